"""Template context: the signed-in user's role, so pages hide buttons the role cannot use."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.services import has_role, role_of


def roles(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {"user_role": role_of(user), "can_write": has_role(user, "editor")}
