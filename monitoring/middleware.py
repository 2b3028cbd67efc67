"""Times every request into http_request_duration_seconds{method, route, status}."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from monitoring.metrics import REQUEST_DURATION

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route pattern, never the raw path, keeps the label set small.
        if match is not None:
            route = "/" + match.route.replace("^", "").replace("$", "")  # DRF routers contribute regexes
        else:
            route = "static" if request.path.startswith("/static/") else "unmatched"
        method = request.method if request.method in _METHODS else "OTHER"
        REQUEST_DURATION.labels(method, route, str(response.status_code)).observe(time.perf_counter() - start)
        return response
