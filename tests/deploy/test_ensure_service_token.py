"""`manage.py ensure_service_token`: the token Prometheus scrapes /metrics with, registered from a file."""

from __future__ import annotations

import secrets
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, AuditEvent, Profile, Role
from accounts.services import hash_token, revoke_api_token


def new_secret() -> str:
    return "mlp_" + secrets.token_urlsafe(32)


def write_secret(tmp_path: Path, secret: str, name: str = "metrics_token") -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n")  # a trailing newline, as `echo` and editors leave it
    return path


def ensure(username: str, path: Path, *extra: str) -> str:
    out = StringIO()
    call_command("ensure_service_token", username, "--secret-file", str(path), *extra, stdout=out)
    return out.getvalue()


def test_it_registers_the_token_from_the_secret_file(db: None, tmp_path: Path) -> None:
    secret = new_secret()
    ensure("prometheus", write_secret(tmp_path, secret), "--name", "prometheus scrape token")

    user = get_user_model().objects.get(username="prometheus")
    token = ApiToken.objects.get(user=user)
    assert token.digest == hash_token(secret)
    assert token.prefix == secret[:12]
    assert token.name == "prometheus scrape token"
    assert token.is_active
    assert Profile.objects.get(user=user).role == Role.VIEWER
    assert not user.has_usable_password()
    assert not user.is_staff and not user.is_superuser
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"user.create_service_account", "token.create"} <= actions


def test_it_never_prints_the_secret(db: None, tmp_path: Path) -> None:
    secret = new_secret()
    output = ensure("prometheus", write_secret(tmp_path, secret))
    assert secret not in output
    assert secret[:12] in output


def test_it_is_idempotent(db: None, tmp_path: Path) -> None:
    path = write_secret(tmp_path, new_secret())
    ensure("prometheus", path)
    audit_events = AuditEvent.objects.count()

    output = ensure("prometheus", path)

    assert "already active" in output
    assert get_user_model().objects.filter(username="prometheus").count() == 1
    assert ApiToken.objects.count() == 1
    assert AuditEvent.objects.count() == audit_events


def test_it_reactivates_a_revoked_token(db: None, tmp_path: Path) -> None:
    secret = new_secret()
    path = write_secret(tmp_path, secret)
    ensure("prometheus", path)
    token = ApiToken.objects.get()
    revoke_api_token(token, actor=None)

    ensure("prometheus", path)

    token.refresh_from_db()
    assert token.is_active
    assert ApiToken.objects.count() == 1
    assert AuditEvent.objects.filter(action="token.reactivate", object_id=str(token.pk)).exists()


def test_it_reactivates_an_expired_token(db: None, tmp_path: Path) -> None:
    path = write_secret(tmp_path, new_secret())
    ensure("prometheus", path)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(days=1))

    ensure("prometheus", path)

    assert ApiToken.objects.get().is_active


def test_a_new_secret_in_the_file_rotates_the_token(db: None, tmp_path: Path) -> None:
    old_secret, new = new_secret(), new_secret()
    ensure("prometheus", write_secret(tmp_path, old_secret))

    ensure("prometheus", write_secret(tmp_path, new))

    old_token = ApiToken.objects.get(digest=hash_token(old_secret))
    new_token = ApiToken.objects.get(digest=hash_token(new))
    assert not old_token.is_active
    assert new_token.is_active
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {old_secret}").status_code == 401


def test_it_keeps_the_other_tokens_of_the_user(db: None, tmp_path: Path) -> None:
    ensure("prometheus", write_secret(tmp_path, new_secret(), "a"), "--name", "scraper A")
    ensure("prometheus", write_secret(tmp_path, new_secret(), "b"), "--name", "scraper B")
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 2


def test_it_gives_an_existing_user_the_token_without_changing_its_role(db: None, editor: Any, tmp_path: Path) -> None:
    ensure(editor.username, write_secret(tmp_path, new_secret()))
    assert ApiToken.objects.get().user == editor
    assert Profile.objects.get(user=editor).role == Role.EDITOR


def test_it_refuses_a_deactivated_user(db: None, outsider: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="deactivated"):
        ensure(outsider.username, write_secret(tmp_path, new_secret()))
    assert not ApiToken.objects.exists()


def test_it_refuses_a_secret_that_is_another_users_token(db: None, editor: Any, tmp_path: Path) -> None:
    path = write_secret(tmp_path, new_secret())
    ensure(editor.username, path)
    with pytest.raises(CommandError, match="another user"):
        ensure("prometheus", path)


def test_it_rejects_a_short_secret(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="at least 36"):
        ensure("prometheus", write_secret(tmp_path, "mlp_" + "x" * 31))
    assert not ApiToken.objects.exists()
    assert not get_user_model().objects.filter(username="prometheus").exists()


def test_it_accepts_a_secret_of_exactly_the_minimum_length(db: None, tmp_path: Path) -> None:
    ensure("prometheus", write_secret(tmp_path, "mlp_" + "x" * 32))
    assert ApiToken.objects.count() == 1


def test_it_rejects_a_secret_without_the_token_prefix(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="must start with 'mlp_'"):
        ensure("prometheus", write_secret(tmp_path, secrets.token_urlsafe(40)))


def test_it_rejects_a_secret_with_whitespace_inside(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="whitespace"):
        ensure("prometheus", write_secret(tmp_path, "mlp_" + "x" * 20 + " " + "y" * 20))


def test_it_rejects_a_missing_secret_file(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read the token secret"):
        ensure("prometheus", tmp_path / "nowhere")


def test_the_registered_secret_authenticates_the_metrics_endpoint(db: None, tmp_path: Path) -> None:
    secret = new_secret()
    ensure("prometheus", write_secret(tmp_path, secret))
    Client().get("/health")  # at least one observation in the latency histogram

    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "http_request_duration_seconds" in response.content.decode()


def test_the_metrics_endpoint_refuses_a_request_without_a_token(db: None) -> None:
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]
