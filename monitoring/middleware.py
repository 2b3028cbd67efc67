"""Times every request into http_request_duration_seconds{method, route, status}."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from monitoring.metrics import REQUEST_DURATION

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


def route_label(route: str) -> str:
    """`api/v1/jobs/(?P<pk>[^/.]+)/$` (DRF routers contribute regexes) -> `/api/v1/jobs/<pk>/`."""
    return "/" + _GROUP.sub(r"<\1>", route).replace("\\Z", "").rstrip("$")


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route pattern, never the raw path, keeps the label set small.
        if match is not None:
            route = route_label(match.route)
        else:
            route = "static" if request.path.startswith("/static/") else "unmatched"
        method = request.method if request.method in _METHODS else "OTHER"
        REQUEST_DURATION.labels(method, route, str(response.status_code)).observe(time.perf_counter() - start)
        return response
