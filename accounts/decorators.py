"""`public`: the one way to let anonymous visitors reach a view.

Django's own `login_not_required` is not enough, because DRF marks every API view with it (DRF
checks credentials itself); the portal's middleware requires a user unless a view is marked here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_not_required

View = TypeVar("View", bound=Callable[..., Any])


def public(view: View) -> View:
    view = login_not_required(view)
    view.portal_public = True  # type: ignore[attr-defined]
    return view
