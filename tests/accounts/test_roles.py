from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from accounts.models import AuditEvent, Role
from accounts.permissions import can
from accounts.services import role_of, set_role

DEMO = {"type": "demo.sleep", "params": {"steps": 1, "step_seconds": 0}}


def test_a_viewer_reads_but_cannot_start_jobs(viewer_client: Client) -> None:
    assert viewer_client.get("/api/v1/jobs/").status_code == 200
    response = viewer_client.post("/api/v1/jobs/", DEMO, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert viewer_client.post("/jobs/demo/").status_code == 403


def test_an_editor_starts_jobs(editor_client: Client) -> None:
    assert editor_client.post("/api/v1/jobs/", DEMO, content_type="application/json").status_code == 202
    assert editor_client.post("/jobs/demo/").status_code == 302


def test_roles_rank_viewer_below_editor_below_admin(viewer: Any, editor: Any, admin_user: Any) -> None:
    assert [role_of(u) for u in (viewer, editor, admin_user)] == ["viewer", "editor", "admin"]
    assert can(viewer, "view") and not can(viewer, "change")
    assert can(editor, "change") and not can(editor, "manage")
    assert can(admin_user, "manage")


def test_an_object_can_narrow_what_a_role_allows(editor: Any) -> None:
    class Locked:
        def user_can(self, user: Any, action: str) -> bool:
            return action == "view"

    assert can(editor, "view", Locked()) and not can(editor, "change", Locked())


def test_changing_a_role_is_audited(viewer: Any, admin_user: Any) -> None:
    set_role(viewer, Role.EDITOR, actor=admin_user)
    assert role_of(get_user_model().objects.get(pk=viewer.pk)) == "editor"
    event = AuditEvent.objects.get(action="user.set_role")
    assert (event.actor_name, event.details) == ("alice", {"from": "viewer", "to": "editor"})


def test_ensure_admin_creates_the_first_admin_once_and_prints_a_generated_password(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", "--username", "root", stdout=out)
    password = out.getvalue().split("with password '")[1].split("'")[0]
    assert Client().login(username="root", password=password)
    again = StringIO()
    call_command("ensure_admin", "--username", "root", stdout=again)
    assert "already exists" in again.getvalue()
    assert role_of(get_user_model().objects.get(username="root")) == "admin"


def test_ensure_admin_takes_the_password_from_the_environment(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "chosen-password-123")
    out = StringIO()
    call_command("ensure_admin", "--username", "root", stdout=out)
    assert "chosen-password-123" not in out.getvalue()
    assert Client().login(username="root", password="chosen-password-123")
