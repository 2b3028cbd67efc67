"""Per-experiment permissions: READ, EDIT, MANAGE.

The experiment's creator gets MANAGE; admins can do anything; everyone else gets an explicit grant
or TRACKING_DEFAULT_PERMISSION (at least EDIT on experiment 0, "Default", the shared sandbox).
The role caps it: a viewer never writes, whatever the grant.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import Role
from accounts.services import has_role, role_of
from experiments.models import PERMISSION_RANK, Experiment, ExperimentPermission, Permission
from mlops_portal import rawsql


def default_level() -> str:
    return str(getattr(settings, "TRACKING_DEFAULT_PERMISSION", Permission.READ))


def levels_for(user: Any, experiments: list[Experiment]) -> dict[int, int]:
    """Each experiment's permission rank for `user`, with at most one query for any number of them."""
    role = role_of(user)
    if role is None or not experiments:
        return {e.pk: 0 for e in experiments}
    if role == Role.ADMIN:
        return {e.pk: PERMISSION_RANK[Permission.MANAGE] for e in experiments}
    not_owned = [e.pk for e in experiments if e.owner_id is None or e.owner_id != user.pk]
    grants: dict[int, str] = {}
    if not_owned:
        grants = dict(
            ExperimentPermission.objects.filter(user=user, experiment_id__in=not_owned).values_list(
                "experiment_id", "level"
            )
        )
    return {e.pk: _level(user, role, e, grants.get(e.pk)) for e in experiments}


def object_level(user: Any, role: str, owner_id: Any, grant: str | None, *, at_least: str | None = None) -> int:
    """The rank `user` (of `role`) holds on one object that has an owner and per-user grants
    (experiments, registered models): MANAGE for admins and the owner, else the grant or the
    configured default (raised to `at_least` when there is no grant); a viewer reads at most."""
    if role == Role.ADMIN:
        return PERMISSION_RANK[Permission.MANAGE]
    if owner_id is not None and owner_id == user.pk:
        level = PERMISSION_RANK[Permission.MANAGE]
    else:
        level = PERMISSION_RANK[grant or default_level()]
        if at_least is not None and grant is None:
            level = max(level, PERMISSION_RANK[at_least])
    if role == Role.VIEWER:
        level = min(level, PERMISSION_RANK[Permission.READ])
    return level


def sql_allows(user: Any, level: str, experiment: str = "e", grant: str = "g") -> tuple[str, list[Any]]:
    """A SQL boolean, and its parameters, that is true exactly when `user` holds `level` on the
    experiment row aliased `experiment` with the user's grant row (LEFT JOINed) aliased `grant`:
    `_level` written for the database, so a write can check its permission in the statement that
    writes (tests compare the two for every role, owner, grant, default and sandbox)."""
    role = role_of(user)
    need = PERMISSION_RANK[level]
    if role is None or (role == Role.VIEWER and need > PERMISSION_RANK[Permission.READ]):
        return "FALSE", []
    if role == Role.ADMIN:
        return "TRUE", []
    default = PERMISSION_RANK[default_level()]
    sandbox = max(default, PERMISSION_RANK[Permission.EDIT])
    enough = [str(name) for name, rank in PERMISSION_RANK.items() if rank >= need]
    return (
        f"COALESCE({experiment}.owner_id = %s, FALSE) OR COALESCE({grant}.level = ANY(%s::varchar[]), FALSE)"
        f" OR ({grant}.level IS NULL AND CASE WHEN {experiment}.id = 0 THEN %s ELSE %s END)",
        # The levels as one array literal: psycopg adapts a list element by element in Python, on every
        # write the mlflow client makes.
        [user.pk, rawsql.text_array(enough), sandbox >= need, default >= need],
    )


def _level(user: Any, role: str, experiment: Experiment, grant: str | None) -> int:
    # "Default" is the shared sandbox every MLflow script logs to unless told otherwise.
    sandbox = Permission.EDIT if experiment.pk == 0 else None
    return object_level(user, role, experiment.owner_id, grant, at_least=sandbox)


def level_with_grant(user: Any, experiment: Experiment, grant: str | None) -> int:
    """`level_for` when the caller already read the user's grant on `experiment` (None: no grant)."""
    role = role_of(user)
    return 0 if role is None else _level(user, role, experiment, grant)


def level_for(user: Any, experiment: Experiment) -> int:
    return levels_for(user, [experiment])[experiment.pk]


def can(user: Any, experiment: Experiment, needed: str) -> bool:
    return level_for(user, experiment) >= PERMISSION_RANK[needed]


def visibility_scope(user: Any) -> Any:
    """What decides the SQL of `visible_experiments(user)`: "all", "none", or ("user", pk) (owned,
    granted and the sandbox, looked up by the query when it runs)."""
    if has_role(user, Role.ADMIN):
        return "all"
    if role_of(user) is None:
        return "none"
    if PERMISSION_RANK[default_level()] >= PERMISSION_RANK[Permission.READ]:
        return "all"
    return ("user", user.pk)


def visible_experiments(user: Any, queryset: QuerySet[Experiment] | None = None) -> QuerySet[Experiment]:
    """The experiments `user` may READ, as one query."""
    qs = Experiment.objects.all() if queryset is None else queryset
    scope = visibility_scope(user)
    if scope == "all":
        return qs
    if scope == "none":
        return qs.none()
    from django.db.models import Q

    granted = ExperimentPermission.objects.filter(user=user).values("experiment_id")
    return qs.filter(Q(owner=user) | Q(pk__in=granted) | Q(pk=0))  # "Default" is everyone's sandbox
