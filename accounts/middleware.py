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
from django.middleware.csrf import CsrfViewMiddleware

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
    # Bearer only: a Basic challenge would make browsers prompt for and then cache credentials, which
    # they would attach to cross-site requests (API clients send Basic without being asked).
    response["WWW-Authenticate"] = 'Bearer realm="mlops-portal"'
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
            return self._csrf_for_exempt_apis(request, view_func)
        if is_api_path(request.path):
            return unauthenticated_response(
                request, "authentication required: send a Bearer token or Basic credentials"
            )
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)

    def _csrf_for_exempt_apis(self, request: HttpRequest, view_func: Callable[..., Any]) -> HttpResponse | None:
        """The MLflow-compatible views are csrf_exempt (the mlflow client sends no CSRF token), so a
        write that rides on a browser's session cookie alone is checked for CSRF here instead."""
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return None
        if getattr(request, "_dont_enforce_csrf_checks", False):  # credentials came in a header
            return None
        if not getattr(view_func, "csrf_exempt", False) or not request.path.startswith(MLFLOW_PREFIXES):
            return None
        rejected = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, _csrf_protected, (), {})
        if rejected is None:
            return None
        return JsonResponse(
            {"error_code": "PERMISSION_DENIED", "message": "CSRF check failed: send a token instead of a session"},
            status=403,
        )


def _csrf_protected(request: HttpRequest) -> HttpResponse:  # a stand-in view that is not csrf_exempt
    return HttpResponse()


class HeaderAuthFastLaneMiddleware:
    """Serve header-authenticated calls to `fast_lane` views without the rest of the middleware.

    The mlflow client makes a call per logged metric, each a small JSON request with a token; the
    session, CSRF, messages and common middleware have nothing to do for it, yet walking them and
    resolving the URL cost about a third of the call. A view marked `fast_lane = True` (the MLflow
    endpoints: JSON in and out, csrf_exempt, no session) is called straight from here when the
    request carries an Authorization header, with exactly what the skipped middleware would have
    given it: the header's user (or the same 401), the host validated against ALLOWED_HOSTS, the
    resolver match (the metrics middleware labels by route) and the X-Frame-Options header. Sits
    after the metrics and security middleware, so both still run. Anything else, a request without
    the header included, takes the whole chain.
    """

    PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/3.0/mlflow/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.middleware.clickjacking import XFrameOptionsMiddleware

        self.get_response = get_response
        self._frame_options = XFrameOptionsMiddleware(get_response)
        self._routes: dict[str, Any] = {}  # path -> ResolverMatch of a fast-lane view

    def _match(self, path: str) -> Any:
        match = self._routes.get(path)
        if match is not None:
            return match
        from django.urls import Resolver404, resolve

        try:
            match = resolve(path)
        except Resolver404:
            return None
        if match.kwargs or not getattr(match.func, "fast_lane", False):
            return None  # ids in the path (not worth an entry per id), or not a fast-lane view
        self._routes[path] = match  # a finite set: the URL conf's fixed paths
        return match

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if "HTTP_AUTHORIZATION" not in request.META or not path.startswith(self.PREFIXES):
            return self.get_response(request)
        match = self._match(path)
        if match is None:
            return self.get_response(request)
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it (DisallowedHost: a 400)
        try:
            result = authenticate_header(request)
        except BadCredentials as exc:
            return unauthenticated_response(request, str(exc))
        if result is None:
            return self.get_response(request)
        request.user = result[0]
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        request.resolver_match = match
        response = match.func(request, *match.args)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))  # as CommonMiddleware sets it
        return self._frame_options.process_response(request, response)
