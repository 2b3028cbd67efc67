"""Infrastructure views: liveness, readiness and the error pages."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from accounts.decorators import public

logger = logging.getLogger(__name__)


@public
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else so a slow database cannot kill pods."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return f"database: {exc.__class__.__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from mlops_portal.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any transport error means "not ready"
        return f"broker: {exc.__class__.__name__}: {exc}"
    return None


@public
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the broker are reachable."""
    start = time.perf_counter()
    checks: dict[str, Any] = {}
    problems = [p for p in (_check_database(), _check_broker()) if p]
    checks["database"] = "ok" if not any(p.startswith("database") for p in problems) else "down"
    checks["broker"] = "ok" if not any(p.startswith("broker") for p in problems) else "down"
    # Anonymous callers see which check failed, never the error text (hosts, users, URLs): that goes to the log.
    body = {
        "status": "ok" if not problems else "unavailable",
        "checks": checks,
        "elapsed_ms": round(1000 * (time.perf_counter() - start), 1),
    }
    if problems:
        logger.warning("not ready", extra={"problems": problems})
    return JsonResponse(body, status=200 if not problems else 503)


def _wants_json(request: HttpRequest) -> bool:
    from accounts.middleware import is_api_path  # the project package may use the bottom layer's helpers

    return is_api_path(request.path) or "application/json" in request.headers.get("Accept", "")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"error": {"code": "not_found", "message": f"no such endpoint: {request.path}", "field": None}},
            status=404,
        )
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    from accounts.middleware import MLFLOW_PREFIXES

    if request.path.startswith(MLFLOW_PREFIXES):
        # The mlflow client parses this shape (and retries 5xx, which is right for a real fault).
        return JsonResponse({"error_code": "INTERNAL_ERROR", "message": "internal error"}, status=500)
    if _wants_json(request):
        return JsonResponse({"error": {"code": "server_error", "message": "internal error", "field": None}}, status=500)
    return render(request, "500.html", {"debug": settings.DEBUG}, status=500)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    if _wants_json(request):
        return JsonResponse({"error": {"code": "permission_denied", "message": message, "field": None}}, status=403)
    return render(request, "403.html", {"message": message}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": {"code": "bad_request", "message": "bad request", "field": None}}, status=400)
    return render(request, "400.html", status=400)


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The posted `next` page when it is on this site (no open redirect), else `fallback`."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback
