from __future__ import annotations

import base64
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, AuditEvent
from accounts.services import create_api_token, hash_token, revoke_api_token
from tests.conftest import PASSWORD


def test_a_token_is_stored_only_as_its_hash(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    row = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.secret.startswith("mlp_") and len(issued.secret) > 40
    assert row.digest == hash_token(issued.secret)
    assert issued.secret not in {row.digest, row.prefix, row.name}
    assert row.prefix == issued.secret[:12]


def test_a_bearer_token_authenticates_api_calls_and_records_its_use(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert response.status_code == 200
    assert response.json() == {"username": "victor", "email": "", "role": "viewer"}
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


def test_a_revoked_token_is_refused(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    revoke_api_token(issued.token, actor=viewer)
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid, expired or revoked API token"


def test_an_expired_token_is_refused(viewer: Any) -> None:
    issued = create_api_token(viewer, "old", expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {issued.secret}").status_code == 401


def test_a_made_up_token_is_refused_even_on_pages(db: None) -> None:
    response = Client().get("/jobs/", HTTP_AUTHORIZATION="Bearer mlp_not-a-real-token")
    assert response.status_code == 401


def test_http_basic_with_username_and_password_works_on_the_api(viewer: Any) -> None:
    good = base64.b64encode(f"victor:{PASSWORD}".encode()).decode()
    bad = base64.b64encode(b"victor:wrong").decode()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200  # cached path
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Basic {bad}").status_code == 401
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION="Basic %%%").status_code == 401


def test_a_changed_password_invalidates_remembered_basic_credentials(viewer: Any) -> None:
    header = "Basic " + base64.b64encode(f"victor:{PASSWORD}".encode()).decode()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header).status_code == 200
    viewer.set_password("a completely new password")
    viewer.save()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header).status_code == 401


def test_token_requests_need_no_csrf_token_but_session_requests_do(editor: Any) -> None:
    issued = create_api_token(editor, "ci")
    strict = Client(enforce_csrf_checks=True)
    body = {"type": "demo.sleep", "params": {"steps": 1, "step_seconds": 0}}
    response = strict.post("/api/v1/jobs/", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {issued.secret}")  # fmt: skip
    assert response.status_code == 202
    strict.force_login(editor)
    assert strict.post("/api/v1/jobs/", body, content_type="application/json").status_code == 403


def test_the_tokens_page_shows_a_new_secret_once(viewer_client: Client, viewer: Any) -> None:
    response = viewer_client.post("/accounts/tokens/", {"name": "my laptop"}, follow=True)
    assert response.redirect_chain == [("/accounts/tokens/", 302)]  # a reload cannot create a second token
    token = ApiToken.objects.get(user=viewer)
    secret = response.context["new_secret"]
    assert hash_token(secret) == token.digest
    assert secret in response.content.decode()
    again = viewer_client.get("/accounts/tokens/").content.decode()
    assert secret not in again and token.prefix in again


def test_a_user_revokes_their_own_token_but_not_someone_elses(viewer_client: Client, viewer: Any, editor: Any) -> None:
    mine = create_api_token(viewer, "mine").token
    theirs = create_api_token(editor, "theirs").token
    assert viewer_client.post(f"/accounts/tokens/{mine.pk}/revoke/").status_code == 302
    assert viewer_client.post(f"/accounts/tokens/{theirs.pk}/revoke/").status_code == 404
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None


def test_tokens_are_managed_through_the_api(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    created = client.post("/api/v1/tokens/", {"name": "script"}, content_type="application/json")
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = client.get("/api/v1/tokens/").json()
    assert [t["name"] for t in listed["results"]] == ["script"]
    assert "token" not in listed["results"][0]
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}/").status_code == 204
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_create_api_token_prints_a_working_token(viewer: Any) -> None:
    out = StringIO()
    call_command("create_api_token", "victor", stdout=out)
    secret = out.getvalue().strip()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()["username"] == "victor"


def test_create_api_token_names_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_token_creation_and_revocation_are_audited(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    revoke_api_token(issued.token, actor=viewer)
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name", "object_type"))
    assert actions == [("token.create", "victor", "accounts.apitoken"), ("token.revoke", "victor", "accounts.apitoken")]
