"""Shared REST API conventions: pagination and the one JSON error shape.

Every API error looks like ``{"error": {"code": ..., "message": ..., "field": ...}}`` so clients
need one parser; validation errors also carry every field's messages under ``details``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def error_body(code: str, message: str, field: str | None = None, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        error["details"] = details
    return {"error": error}


def json_error(status_code: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, field), status=status_code)


def first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return first_message(detail[0])
    if isinstance(detail, dict) and detail:
        return first_message(next(iter(detail.values())))
    return str(detail)


def first_field(detail: Any, prefix: str = "") -> str | None:
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        name = f"{prefix}.{key}" if prefix else str(key)
        if key == "non_field_errors":
            return prefix or None
        nested = first_field(value, name)
        return nested or name
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return first_field(detail[0], prefix)
    return None


def error_text(detail: Any) -> str:
    """A ValidationError's first problem as one line, worded as the API's errors are
    (`params.epochs: Ensure this value is ...`): for pages' messages and job errors."""
    field = first_field(detail)
    return f"{field}: {first_message(detail)}" if field else first_message(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        field = first_field(exc.detail)
        message = first_message(exc.detail)
        if field:
            message = f"{field}: {message}"
        response.data = error_body("invalid", message, field, details=exc.detail)
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(str(code), first_message(exc.detail))
    return response
