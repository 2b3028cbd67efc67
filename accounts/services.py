"""The write path for accounts: tokens, roles, admin bootstrap and the audit log."""

from __future__ import annotations

import copy
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction
from django.utils import timezone

from accounts.models import ROLE_RANK, ApiToken, AuditEvent, Profile, Role
from mlops_portal import rawsql

TOKEN_PREFIX = "mlp_"  # noqa: S105  (a public marker, not a secret)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def create_api_token(
    user: AbstractBaseUser, name: str, *, actor: Any = None, expires_at: datetime | None = None
) -> IssuedToken:
    """Create a token for `user`; the returned secret is the only time it is ever visible."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name[:100], prefix=secret[:12], digest=hash_token(secret), expires_at=expires_at
        )
        record_audit(actor or user, "token.create", token, {"name": token.name, "owner": user.get_username()})
    return IssuedToken(token=token, secret=secret)


def revoke_api_token(token: ApiToken, *, actor: Any) -> None:
    if token.revoked_at is not None:
        return
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])  # accounts.signals forgets the cached check
        record_audit(actor, "token.revoke", token, {"name": token.name, "owner": token.user.get_username()})


# Tokens checked recently, per process: the `mlflow` client calls once per logged value, and the
# token lookup would otherwise be a database round trip on every call. Revoking a token, changing a
# role or deactivating a user forgets the entries in this process at once (see accounts.apps); other
# web processes notice within TOKEN_CACHE_SECONDS (0 turns the cache off).
_token_cache: dict[str, tuple[float, Any, ApiToken]] = {}
_token_cache_lock = threading.Lock()


def forget_cached_tokens(*, user_id: Any = None, token_id: Any = None) -> None:
    with _token_cache_lock:
        for digest, (_, user, token) in list(_token_cache.items()):
            if (user_id is not None and user.pk == user_id) or (token_id is not None and token.pk == token_id):
                del _token_cache[digest]


def user_for_token(secret: str) -> tuple[Any, ApiToken] | None:
    """The active token's user, touching last_used_at at most once a minute to spare the database."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(secret)
    ttl = float(getattr(settings, "TOKEN_CACHE_SECONDS", 0))
    now = time.monotonic()
    hit = _token_cache.get(digest) if ttl > 0 else None
    if hit is not None and hit[0] > now and hit[2].is_active:
        # A copy per request: views may set attributes on request.user.
        return _copy_user(hit[1]), hit[2]
    found = _load_token(digest)
    if found is not None and ttl > 0:
        with _token_cache_lock:
            if len(_token_cache) >= 10_000:
                _token_cache.clear()
            _token_cache[digest] = (now + ttl, found[0], found[1])
        return _copy_user(found[0]), found[1]
    return found


def _copy_user(user: Any) -> Any:
    """What `copy.copy` makes of a model instance (its fields and a copy of its state, related-object
    cache included), without the pickling protocol it goes through: 5 -> 2 us, once per API call."""
    clone = user.__class__.__new__(user.__class__)
    clone.__dict__ = user.__dict__.copy()
    clone._state = copy.copy(user._state)
    clone._state.fields_cache = user._state.fields_cache.copy()
    return clone


def _load_token(digest: str) -> tuple[Any, ApiToken] | None:
    """Token, user and role in one hand-written query: compiling the ORM equivalent would cost more
    than the round trip."""
    user_model = get_user_model()
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {rawsql.select_list(ApiToken, 't')}, {rawsql.select_list(user_model, 'u')}, p.role"  # noqa: S608
            f" FROM {ApiToken._meta.db_table} t"
            f" JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = t.user_id"
            f" LEFT JOIN {Profile._meta.db_table} p ON p.user_id = t.user_id"
            " WHERE t.digest = %s",
            [digest],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    token = rawsql.load(ApiToken, row)
    user = rawsql.load(user_model, row, rawsql.width(ApiToken))
    token.user = user
    if not token.is_active or not user.is_active:
        return None
    role = row[-1]
    user._portal_role = Role.ADMIN if user.is_superuser else (role or Role.VIEWER)
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return user, token


def role_of(user: Any) -> str | None:
    """The user's role, or None for anonymous and inactive users."""
    if isinstance(user, AnonymousUser) or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_portal_role", None)
    if cached is None:
        profile = Profile.objects.filter(user=user).only("role").first()
        cached = profile.role if profile else Role.VIEWER
        user._portal_role = cached
    return cached


def has_role(user: Any, needed: str) -> bool:
    role = role_of(user)
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


def set_role(user: Any, role: str, *, actor: Any) -> Profile:
    with transaction.atomic():
        profile, _ = Profile.objects.get_or_create(user=user)
        old = profile.role
        profile.role = Role(role)
        profile.save(update_fields=["role"])
        user._portal_role = profile.role
        record_audit(actor, "user.set_role", user, {"from": old, "to": profile.role})
    return profile


def ensure_admin(username: str, password: str | None, email: str = "") -> tuple[Any, bool, str | None]:
    """Create the first admin if missing: (user, created, the password if one was generated)."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False, None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email=email, password=password)
        Profile.objects.create(user=user, role=Role.ADMIN)
        record_audit(None, "user.bootstrap_admin", user, {})
    return user, True, generated


def record_audit(actor: Any, action: str, obj: Any = None, details: dict[str, Any] | None = None) -> AuditEvent:
    """Append one audit event. Call it inside the service's transaction so both land or neither."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    event = AuditEvent(
        actor=actor if authenticated else None,
        actor_name=actor.get_username() if authenticated else "system",
        action=action,
        details=details or {},
    )
    if isinstance(obj, models.Model):
        event.object_type = obj._meta.label_lower
        event.object_id = str(obj.pk)
        event.object_repr = str(obj)[:200]
    elif obj is not None:
        event.object_repr = str(obj)[:200]
    event.save()
    return event


class ServiceTokenRefused(ValueError):
    """The secret or the user cannot become a service token; the message says why."""


def ensure_service_token(username: str, secret: str, name: str = "service token") -> list[str]:
    """Make `secret` (chosen by an operator, e.g. in a file Prometheus also reads) an active token.

    Creates the service account (a viewer without a password) if missing, re-activates the token if
    it was revoked, and revokes older active tokens of the same name so replacing the secret rotates it.
    Idempotent. Returns notes on what changed.
    """
    name = name[:100]
    notes: list[str] = []
    digest = hash_token(secret)
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(username=username).first()
        if user is None:
            # A service account never logs in with a password; it has only this token.
            user = User(username=username)
            user.set_unusable_password()
            user.save()
            Profile.objects.create(user=user, role=Role.VIEWER)
            record_audit(None, "user.create_service_account", user, {"role": Role.VIEWER})
            notes.append(f"Created service account {username!r} (role viewer).")
        elif not user.is_active:
            raise ServiceTokenRefused(f"user {username!r} is deactivated; reactivate it in the admin first")
        else:
            Profile.objects.get_or_create(user=user, defaults={"role": Role.VIEWER})

        token = ApiToken.objects.select_for_update().filter(digest=digest).first()
        if token is not None and token.user_id != user.pk:
            raise ServiceTokenRefused(
                f"this secret is already a token of another user ({token.user.get_username()!r}); "
                "use a different secret"
            )
        if token is None:
            token = ApiToken.objects.create(user=user, name=name, prefix=secret[:12], digest=digest)
            record_audit(None, "token.create", token, {"name": name, "owner": username, "source": "secret file"})
            notes.append(f"Registered token {token.prefix}… for {username!r}.")
        elif not token.is_active:
            token.revoked_at = None
            token.expires_at = None
            token.save(update_fields=["revoked_at", "expires_at"])
            record_audit(None, "token.reactivate", token, {"name": token.name, "owner": username})
            notes.append(f"Reactivated token {token.prefix}… for {username!r}.")
        else:
            notes.append(f"Token {token.prefix}… of {username!r} is already active.")

        # The file is the one source of truth for this named token: an older secret is rotated out.
        now = timezone.now()
        for old in ApiToken.objects.filter(user=user, name=token.name, revoked_at__isnull=True).exclude(pk=token.pk):
            old.revoked_at = now
            old.save(update_fields=["revoked_at"])
            record_audit(None, "token.revoke", old, {"name": old.name, "owner": username, "reason": "rotated"})
            notes.append(f"Revoked the previous token {old.prefix}… of {username!r}.")
    return notes
