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


def default_level() -> str:
    return str(getattr(settings, "TRACKING_DEFAULT_PERMISSION", Permission.READ))


def level_for(user: Any, experiment: Experiment) -> int:
    role = role_of(user)
    if role is None:
        return 0
    if role == Role.ADMIN:
        return PERMISSION_RANK[Permission.MANAGE]
    if experiment.owner_id is not None and experiment.owner_id == user.pk:
        level = PERMISSION_RANK[Permission.MANAGE]
    else:
        grant = (
            ExperimentPermission.objects.filter(experiment=experiment, user=user)
            .values_list("level", flat=True)
            .first()
        )
        level = PERMISSION_RANK[grant or default_level()]
        if experiment.pk == 0 and grant is None:
            # "Default" is the shared sandbox every MLflow script logs to unless told otherwise.
            level = max(level, PERMISSION_RANK[Permission.EDIT])
    if role == Role.VIEWER:
        level = min(level, PERMISSION_RANK[Permission.READ])
    return level


def can(user: Any, experiment: Experiment, needed: str) -> bool:
    return level_for(user, experiment) >= PERMISSION_RANK[needed]


def visible_experiments(user: Any, queryset: QuerySet[Experiment] | None = None) -> QuerySet[Experiment]:
    """The experiments `user` may READ, as one query."""
    qs = Experiment.objects.all() if queryset is None else queryset
    if has_role(user, Role.ADMIN):
        return qs
    if role_of(user) is None:
        return qs.none()
    if PERMISSION_RANK[default_level()] >= PERMISSION_RANK[Permission.READ]:
        return qs
    from django.db.models import Q

    granted = ExperimentPermission.objects.filter(user=user).values("experiment_id")
    return qs.filter(Q(owner=user) | Q(pk__in=granted) | Q(pk=0))  # "Default" is everyone's sandbox
