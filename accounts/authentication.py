"""Authentication from the Authorization header: `Bearer <token>` and HTTP Basic.

Used by the middleware (for every URL, the MLflow-compatible API included) and by DRF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.services import user_for_token


class BadCredentials(Exception):
    """The request carried an Authorization header that did not authenticate anyone."""


# Checking a password costs a deliberately slow hash (~0.1 s). Clients such as mlflow send Basic
# credentials on every request, so a successful check is remembered briefly, keyed by a hash of the
# header and of the user's stored password hash (a password change invalidates it at once).
_BASIC_TTL = 60.0
_basic_cache: dict[str, tuple[float, int, str]] = {}
_basic_lock = threading.Lock()


def _basic_user(header_value: str) -> Any:
    try:
        decoded = base64.b64decode(header_value.strip(), validate=True).decode("utf-8")
        username, _, password = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCredentials("malformed Basic credentials") from None
    key = hashlib.sha256(header_value.encode()).hexdigest()
    now = time.monotonic()
    with _basic_lock:
        hit = _basic_cache.get(key)
    if hit and hit[0] > now:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=hit[1], is_active=True).first()
        if user is not None and hmac.compare_digest(hashlib.sha256(user.password.encode()).hexdigest(), hit[2]):
            return user
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise BadCredentials("invalid username or password")
    with _basic_lock:
        if len(_basic_cache) > 10_000:
            _basic_cache.clear()
        _basic_cache[key] = (now + _BASIC_TTL, user.pk, hashlib.sha256(user.password.encode()).hexdigest())
    return user


def authenticate_header(request: HttpRequest) -> tuple[Any, str, Any] | None:
    """(user, method, token) from the Authorization header, None when there is none.

    The result is remembered on the request so the middleware and DRF check credentials once.
    """
    if hasattr(request, "_header_auth"):
        return request._header_auth  # type: ignore[no-any-return]
    header = request.META.get("HTTP_AUTHORIZATION", "")
    result: tuple[Any, str, Any] | None = None
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            found = user_for_token(value.strip())
            if found is None:
                raise BadCredentials("invalid, expired or revoked API token")
            result = (found[0], "token", found[1])
        elif scheme == "basic":
            result = (_basic_user(value), "basic", None)
        else:
            raise BadCredentials(f"unsupported Authorization scheme {scheme!r}; use Bearer or Basic")
    request._header_auth = result  # type: ignore[attr-defined]
    return result


class _HeaderAuthentication(authentication.BaseAuthentication):
    scheme = ""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        try:
            result = authenticate_header(request._request)
        except BadCredentials as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        if result is None or result[1] != self.method:
            return None
        return result[0], result[2]

    def authenticate_header(self, request: Request) -> str:
        return f'{self.scheme} realm="mlops-portal"'


class BearerTokenAuthentication(_HeaderAuthentication):
    """`Authorization: Bearer <token>` with a token from the UI or `manage.py create_api_token`."""

    scheme = "Bearer"
    method = "token"


class CachedBasicAuthentication(_HeaderAuthentication):
    """HTTP Basic with the user's username and password."""

    scheme = "Basic"
    method = "basic"


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


class BasicScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.authentication.CachedBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}
