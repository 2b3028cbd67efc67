"""Per-registered-model permissions: READ, EDIT, MANAGE, on the same rules as experiments.

The model's creator gets MANAGE; admins can do anything; everyone else gets an explicit grant or the
tracking default (TRACKING_DEFAULT_PERMISSION, READ unless configured). The role caps it: a viewer
never writes, whatever the grant.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts.models import Role
from accounts.services import has_role, role_of
from experiments.models import PERMISSION_RANK, Permission
from experiments.permissions import default_level, object_level
from registry.models import RegisteredModel, RegisteredModelPermission


def levels_for(user: Any, models: list[RegisteredModel]) -> dict[int, int]:
    """Each model's permission rank for `user`, with at most one query for any number of them."""
    role = role_of(user)
    if role is None or not models:
        return {m.pk: 0 for m in models}
    if role == Role.ADMIN:
        return {m.pk: PERMISSION_RANK[Permission.MANAGE] for m in models}
    not_owned = [m.pk for m in models if m.owner_id is None or m.owner_id != user.pk]
    grants: dict[int, str] = {}
    if not_owned:
        grants = dict(
            RegisteredModelPermission.objects.filter(user=user, model_id__in=not_owned).values_list("model_id", "level")
        )
    return {m.pk: object_level(user, role, m.owner_id, grants.get(m.pk)) for m in models}


def level_for(user: Any, model: RegisteredModel) -> int:
    return levels_for(user, [model])[model.pk]


def can(user: Any, model: RegisteredModel, needed: str) -> bool:
    return level_for(user, model) >= PERMISSION_RANK[needed]


def visible_models(user: Any, queryset: QuerySet[RegisteredModel] | None = None) -> QuerySet[RegisteredModel]:
    """The registered models `user` may READ, as one query."""
    qs = RegisteredModel.objects.all() if queryset is None else queryset
    if has_role(user, Role.ADMIN):
        return qs
    if role_of(user) is None:
        return qs.none()
    if PERMISSION_RANK[default_level()] >= PERMISSION_RANK[Permission.READ]:
        return qs
    granted = RegisteredModelPermission.objects.filter(user=user).values("model_id")
    return qs.filter(Q(owner=user) | Q(pk__in=granted))
