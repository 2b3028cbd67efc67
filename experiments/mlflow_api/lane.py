"""The `mlflow` client's per-value writes, answered below Django's request handling.

`mlflow.log_metric` and `mlflow.log_param` send one small POST each, and a training loop sends them
by the hundred, one after the other. Django's handler, middleware and response objects cost such a
call about 0.2 ms of the server's time, as much again as the write's own statement, and the client
waits for every one (docs/performance.md, "The real client's sequence").

The lane answers exactly those two calls, on their happy path, with the view's own work
(`tracking.write_metric` and `write_param`) and the response Django would have sent: the same status,
body and headers (the security middleware's and the frame-options header, built by that middleware
itself), and the same request metric. Anything else goes to Django unchanged, before anything is
written, so Django's answer stays the only one for every error:

- another path or method; a body that is not a JSON object of at most `MAX_BODY` bytes;
- a host not in ALLOWED_HOSTS, or plain HTTP where HTTPS is required (read by Django's request);
- no credentials, or credentials Django refuses (`authenticate_header`, the fast-lane middleware's);
- a NUL character escaped anywhere in the body (Django refuses it with a 400);
- a value the view refuses, a run the caller may not write or that is gone (the write's statement
  checks the permission and writes nothing then), and any error at all, from the database or not.
  Both writes are idempotent (a point or a param stored once), so Django running the request again
  is safe.

What Django does around a request and the lane keeps: the connection is closed when it is obsolete
or broken (`close_old_connections`, as at the start and the end of every Django request); the lane
runs inside `request_only` (mlops_portal/wsgi.py), so the process environment never passes for a
header.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, close_old_connections, connections
from django.http import HttpRequest
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import resolve

from accounts.authentication import BadCredentials, authenticate_header
from experiments.mlflow_api import tracking
from experiments.mlflow_api.common import NUL_ESCAPE, json_response
from monitoring.metrics import REQUEST_DURATION
from monitoring.middleware import route_label

MAX_BODY = 64 * 1024  # a log-metric or log-parameter call is under 7 kB (a 6,000-character value)

# The paths the lane answers and the work of the view Django would run for each (a test holds that
# each path resolves to that view).
WRITES: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "/api/2.0/mlflow/runs/log-metric": tracking.write_metric,
    "/api/2.0/mlflow/runs/log-parameter": tracking.write_param,
}
BODY = b"{}"  # what both views answer

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Request(HttpRequest):
    """What the middleware's `process_response` reads of a request: whether it came over HTTPS."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


_headers: dict[bool, list[tuple[str, str]]] = {}
_metrics: dict[str, Any] = {}  # path -> the labelled request-duration histogram


def response_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers of the views' 200 answer, as the fast-lane middleware and the security middleware
    set them (accounts.middleware.HeaderAuthFastLaneMiddleware), built once by those middleware."""
    headers = _headers.get(secure)
    if headers is None:
        request, response = _Request(secure), json_response({})
        response["Content-Length"] = str(len(response.content))

        def view(_request: HttpRequest) -> Any:
            return response

        XFrameOptionsMiddleware(view).process_response(request, response)
        SecurityMiddleware(view).process_response(request, response)
        headers = _headers[secure] = list(response.items())
    return headers


def _forget(**_kwargs: Any) -> None:
    _headers.clear()


setting_changed.connect(_forget)  # tests change the security settings


def _duration_metric(path: str) -> Any:
    metric = _metrics.get(path)
    if metric is None:
        metric = _metrics[path] = REQUEST_DURATION.labels("POST", route_label(resolve(path).route), "200")
    return metric


def _user(request: HttpRequest) -> Any:
    """The caller, as the fast-lane middleware finds it (accounts.middleware.HeaderAuthFastLaneMiddleware):
    the host allowed, then the Authorization header's token or password. None for anything else (no
    header, bad credentials, a host not allowed, the database failing): Django answers it."""
    try:
        request.get_host()
        result = authenticate_header(request)
    except (DisallowedHost, BadCredentials, DatabaseError):
        return None
    return None if result is None else result[0]


def _body(environ: dict[str, Any]) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY:
        return None
    return bytes(environ["wsgi.input"].read(length))


class Lane:
    """WSGI middleware: log-metric and log-parameter on their happy path; everything else to `app`."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = WRITES.get(environ.get("PATH_INFO", ""))
        if write is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        start = time.perf_counter()
        request = WSGIRequest(environ)  # for Django's own reading of the scheme, the host and the header
        secure = request.is_secure()
        if settings.SECURE_SSL_REDIRECT and not secure:
            return self.app(environ, start_response)
        close_old_connections()  # as at the start of a Django request (CONN_MAX_AGE, a broken connection)
        user = _user(request)
        if user is None:
            return self.app(environ, start_response)
        raw = _body(environ)
        if raw is None or len(raw) < int(environ["CONTENT_LENGTH"]) or NUL_ESCAPE in raw:
            return self._django(environ, start_response, raw)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._django(environ, start_response, raw)
        if not isinstance(data, dict):
            return self._django(environ, start_response, raw)
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.health_check_enabled and not connection.in_atomic_block:
            # No `SELECT 1` first (as the views skip it, experiments/mlflow_api/common.py): a connection
            # the database dropped fails the write's statement, and Django's path reconnects.
            connection.health_check_done = True
        try:
            write(user, data)
        except Exception:  # every failure is Django's to answer and to log
            # Nothing was written (the statement refused it, or failed): Django runs the request
            # again and answers with its own error, reconnecting first if the connection broke.
            return self._django(environ, start_response, raw)
        finally:
            close_old_connections()
        start_response("200 OK", list(response_headers(secure)))
        _duration_metric(environ["PATH_INFO"]).observe(time.perf_counter() - start)
        return [BODY]

    def _django(self, environ: dict[str, Any], start_response: Callable[..., Any], raw: bytes | None) -> Any:
        """Django's answer, with the body the lane has read put back."""
        if raw is not None:
            environ["wsgi.input"] = io.BytesIO(raw)
        return self.app(environ, start_response)
