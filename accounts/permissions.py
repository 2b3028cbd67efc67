"""Roles and per-object checks, shared by HTML views and the API.

viewer reads, editor writes, admin also manages users and other people's tokens. Objects may narrow
this further with a `user_can(user, action)` method; `can()` asks it after the role check.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework import permissions
from rest_framework.request import Request

from accounts.models import Role
from accounts.services import has_role

ACTION_ROLE = {"view": Role.VIEWER, "change": Role.EDITOR, "delete": Role.EDITOR, "manage": Role.ADMIN}


def can(user: Any, action: str, obj: Any = None) -> bool:
    if not has_role(user, ACTION_ROLE[action]):
        return False
    check = getattr(obj, "user_can", None)
    return bool(check(user, action)) if check is not None else True


def role_required(role: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"this needs the {role} role")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class RolePermission(permissions.BasePermission):
    """Safe methods need viewer, writes need editor; views may raise the bar with `required_role`."""

    message = "your role does not allow this"

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_role", None)
        if needed is None:
            needed = Role.VIEWER if request.method in permissions.SAFE_METHODS else Role.EDITOR
        return has_role(request.user, needed)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if getattr(view, "required_role", None) is not None:
            # The view already scoped its queryset to what this role may touch (e.g. one's own tokens).
            return True
        action = "view" if request.method in permissions.SAFE_METHODS else "change"
        if request.method == "DELETE":
            action = "delete"
        return can(request.user, action, obj)
