"""Personas (owner/admin, editor, viewer, outsider) and clients shared by every test."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.test import Client

from accounts.models import Profile, Role
from accounts.services import create_api_token

PASSWORD = "correct horse battery staple"

# CI sets this so that tests needing Redis or PostgreSQL fail instead of skipping.
REQUIRE_SERVICES = os.environ.get("PORTAL_TEST_REQUIRE_SERVICES", "") == "1"


def make_user(django_user_model: Any, username: str, role: str, **extra: Any) -> Any:
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
    Profile.objects.create(user=user, role=role)
    return user


@pytest.fixture
def admin_user(django_user_model: Any) -> Any:
    return make_user(django_user_model, "alice", Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def editor(django_user_model: Any) -> Any:
    return make_user(django_user_model, "erin", Role.EDITOR)


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    return make_user(django_user_model, "victor", Role.VIEWER)


@pytest.fixture
def outsider(django_user_model: Any) -> Any:
    """An account that exists but was deactivated: it must not get in anywhere."""
    return make_user(django_user_model, "olga", Role.EDITOR, is_active=False)


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user: Any) -> Client:  # overrides pytest-django's fixture of that name
    return _logged_in(admin_user)


@pytest.fixture
def editor_client(editor: Any) -> Client:
    return _logged_in(editor)


@pytest.fixture
def viewer_client(viewer: Any) -> Client:
    return _logged_in(viewer)


def bearer(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {create_api_token(user, 'test').secret}"}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Job ids the code sent to the broker, in order (a real broker and worker run in tests/e2e)."""
    from jobs.tasks import run_job

    messages: list[int] = []
    monkeypatch.setattr(run_job, "apply_async", lambda args, queue, retry: messages.append(args[0]))
    return messages
