"""What every MLflow-compatible endpoint shares: errors, request parsing, JSON encoding.

Protocol quirks the `mlflow` client depends on:
- success is HTTP 200 exactly; the client treats 201 and 204 as failures;
- errors are `{"error_code": ..., "message": ...}` with a 4xx status for client mistakes, because
  the client retries 5xx responses for minutes;
- ids are JSON strings; NaN and ±infinity travel as the strings "NaN", "Infinity", "-Infinity".
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # MLflow's MAX_BATCH_LOG_REQUEST_SIZE

STATUS_BY_CODE = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
}


class MlflowError(Exception):
    """An error the client understands. Raise it anywhere below an endpoint."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.error_code, 400)


def not_found(message: str) -> MlflowError:
    return MlflowError(message, "RESOURCE_DOES_NOT_EXIST")


def invalid(message: str) -> MlflowError:
    return MlflowError(message, "INVALID_PARAMETER_VALUE")


def json_response(payload: Any, status: int = 200) -> HttpResponse:
    # orjson: a search page or a metric history is 0.1-5 MB of JSON, which the standard library
    # encodes several times slower. Non-finite floats never reach it (encode_float makes them strings).
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def error_response(error: MlflowError) -> HttpResponse:
    return json_response({"error_code": error.error_code, "message": error.message}, status=error.status)


def encode_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def parse_float(value: Any, path: str) -> float:
    """A double from JSON: a number, or one of the strings protobuf uses ("NaN", "Infinity", …)."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{path}' supplied: must be a double")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"Invalid value {json.dumps(value)} for parameter '{path}' supplied: must be a double")


def parse_int(value: Any, path: str, default: int | None = None) -> int:
    """An int64 from JSON: protobuf's JSON mapping allows numbers and numeric strings."""
    if value is None or value == "":
        if default is None:
            raise invalid(f"Missing value for required parameter '{path}'.")
        return default
    if isinstance(value, bool):
        raise invalid(f"Parameter '{path}' must be an integer, got '{value}'.")
    try:
        number = int(value) if not isinstance(value, float) else int(value) if value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None or not (-(2**63) <= number < 2**63):
        raise invalid(f"Parameter '{path}' must be an integer, got '{value}'.")
    return number


def require_str(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if value is None or (value == "" and not allow_empty):
        raise invalid(f"Missing value for required parameter '{key}'. See the API docs for more information "
                      "about request parameters.")  # fmt: skip
    if not isinstance(value, str):
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{key}' supplied: must be a string")
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{key}' supplied: must be a string")
    return value


def key_value_pairs(data: dict[str, Any], key: str) -> list[tuple[Any, Any]]:
    """`[{"key": ..., "value": ...}, ...]` (tags, params) as pairs; values are validated by services."""
    raw = data.get(key) or []
    if not isinstance(raw, list):
        raise invalid(f"Invalid value for parameter '{key}' supplied: must be a list")
    out = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid(f"Invalid value for parameter '{key}[{index}]' supplied: must be an object")
        out.append((item.get("key"), item.get("value")))
    return out


def read_json(request: HttpRequest) -> dict[str, Any]:
    """The request's parameters: the JSON body for writes, the query string for GETs."""
    if request.method == "GET":
        params: dict[str, Any] = {}
        for key in request.GET:
            values = request.GET.getlist(key)
            params[key] = values if len(values) > 1 or key.endswith("_ids") else values[0]
        _refuse_nul(params)
        return params
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise MlflowError("Content-Length must be an integer", "BAD_REQUEST") from None
    if length > MAX_BODY_BYTES:
        raise invalid(
            f"Batched logging API requests must be at most {MAX_BODY_BYTES} bytes, got a request of size {length}."
        )
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise invalid(
            f"Batched logging API requests must be at most {MAX_BODY_BYTES} bytes, got a request of size "
            f"more than {MAX_BODY_BYTES}."
        )
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)  # a log-batch of 1000 metrics: 0.7 ms with the standard library
        escaped_nul = NUL_ESCAPE in raw  # the only way a NUL gets into a UTF-8 JSON string
    except orjson.JSONDecodeError:
        # orjson is stricter than the standard library (bare NaN and Infinity, integers beyond 64
        # bits, UTF-16 bodies, lone surrogates): such a body is read the lenient way, as it always was.
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MlflowError(f"Malformed JSON request body: {exc}", "BAD_REQUEST") from None
        escaped_nul = True  # UTF-16 spells the escape otherwise: look at every string
    if not isinstance(data, dict):
        raise MlflowError("The request body must be a JSON object", "BAD_REQUEST")
    if escaped_nul:
        _refuse_nul(data)
    return data


NUL_ESCAPE = b"\\u0000"


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first string (or object key) in `value` holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = _nul_path(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _refuse_nul(data: dict[str, Any]) -> None:
    """PostgreSQL's text holds no NUL character: refused here as the client's mistake (400), not
    left to fail in the database (a 500, which the mlflow client retries for minutes)."""
    path = _nul_path(data, "")
    if path is not None:
        raise invalid(f"Invalid value for parameter '{path}' supplied: must not contain a NUL character (\\u0000)")


Handler = Callable[..., Any]


def _call_with_reconnect(
    handler: Handler, request: HttpRequest, data: dict[str, Any], kwargs: dict[str, Any], idempotent: bool = False
) -> Any:
    """Run the handler without Django's per-request `SELECT 1` connection check (a round trip on
    every call the `mlflow` client makes). A connection the database dropped (it restarted) shows on
    the handler's first statement instead; when that statement was a read (most handlers start with
    a lookup), nothing was written, so the connection is replaced and the call run once more. So is
    an `idempotent` handler's first statement (a write that, run twice, stores what it stores once).
    A failure later, or on another write, is answered as it is: the write may have committed."""
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.in_atomic_block or not conn.health_check_enabled:
        return handler(request, data, **kwargs)
    conn.health_check_done = True
    statements: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    try:
        with conn.execute_wrapper(record):
            return handler(request, data, **kwargs)
    except (OperationalError, InterfaceError):
        first_safe = len(statements) == 1 and (idempotent or statements[0].lstrip().upper().startswith("SELECT"))
        if not first_safe or conn.in_atomic_block or conn.is_usable():
            raise
        logger.warning("database connection lost; reconnecting", extra={"path": request.path})
        conn.close()
        return handler(request, data, **kwargs)


def endpoint(*methods: str, idempotent: bool = False) -> Callable[[Handler], Callable[..., HttpResponse]]:
    """Wrap a handler `(request, data, **kwargs) -> dict` into a view speaking MLflow's protocol.
    `idempotent`: the handler may run again after its first statement failed (see below)."""

    def decorator(handler: Handler) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(handler)
        def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_response(
                    MlflowError(f"{request.method} is not allowed here; use {' or '.join(methods)}", "BAD_REQUEST")
                )
            try:
                data = read_json(request)
                result = _call_with_reconnect(handler, request, data, kwargs, idempotent)
            except MlflowError as exc:
                return error_response(exc)
            except DatabaseError:
                logger.exception("database error in an MLflow endpoint", extra={"path": request.path})
                return error_response(MlflowError("internal database error; try again", "INTERNAL_ERROR"))
            if isinstance(result, HttpResponseBase):
                return result
            return json_response(result if result is not None else {})

        view.mlflow_methods = methods  # type: ignore[attr-defined]
        # JSON in and out, no session, no CSRF: header-authenticated calls skip the rest of the
        # middleware (accounts.middleware.HeaderAuthFastLaneMiddleware).
        view.fast_lane = True  # type: ignore[attr-defined]
        return view

    return decorator
