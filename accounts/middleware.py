"""Authentication required everywhere, except views explicitly marked `accounts.decorators.public`.

Pages redirect anonymous visitors to the login page; APIs answer 401 with a JSON error in the
shape their clients parse (the MLflow-compatible API uses MLflow's shape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.authentication import BadCredentials, authenticate_header

API_PREFIXES = ("/api/", "/ajax-api/", "/metrics", "/dvc/")
MLFLOW_PREFIXES = ("/api/2.0/", "/api/3.0/", "/ajax-api/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def unauthenticated_response(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith(MLFLOW_PREFIXES):
        response: HttpResponse = JsonResponse({"error_code": "UNAUTHENTICATED", "message": message}, status=401)
    else:
        response = JsonResponse({"error": {"code": "not_authenticated", "message": message, "field": None}}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="mlops-portal", Basic realm="mlops-portal"'
    return response


class HeaderAuthenticationMiddleware:
    """Log in the user named by a Bearer token or Basic credentials for this request only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            result = authenticate_header(request)
        except BadCredentials as exc:
            return unauthenticated_response(request, str(exc))
        if result is not None:
            request.user = result[0]
            # CSRF protects cookies; a header the browser never sends by itself needs no CSRF token.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)


class AuthRequiredMiddleware:
    """Deny by default: a view is public only when decorated with `accounts.decorators.public`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if getattr(view_func, "portal_public", False):
            return None
        if request.user.is_authenticated:
            return None
        if is_api_path(request.path):
            return unauthenticated_response(
                request, "authentication required: send a Bearer token or Basic credentials"
            )
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
