"""API tokens are remembered briefly per process (TOKEN_CACHE_SECONDS), and forgotten at once when
what they captured changes in this process."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiToken, Role
from accounts.services import create_api_token, revoke_api_token, set_role


def me(secret: str) -> Any:
    return Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_a_checked_token_is_not_read_from_the_database_again_within_the_cache_time(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    assert me(issued.secret).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert me(issued.secret).status_code == 200
    assert not [q for q in queries.captured_queries if "accounts_apitoken" in q["sql"]]


def test_a_token_revoked_in_this_process_is_refused_at_once(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    assert me(issued.secret).status_code == 200
    revoke_api_token(issued.token, actor=viewer)
    assert me(issued.secret).status_code == 401


def test_a_token_revoked_elsewhere_is_refused_once_the_cache_time_has_passed(viewer: Any, settings: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    assert me(issued.secret).status_code == 200
    # Another web process revoking it: no signal reaches this one.
    ApiToken.objects.filter(pk=issued.token.pk).update(revoked_at="2020-01-01T00:00:00Z")
    assert me(issued.secret).status_code == 200  # still trusted for up to TOKEN_CACHE_SECONDS
    settings.TOKEN_CACHE_SECONDS = 0
    assert me(issued.secret).status_code == 401


def test_a_role_change_takes_effect_at_once(viewer: Any, admin_user: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    assert me(issued.secret).json()["role"] == Role.VIEWER
    set_role(viewer, Role.EDITOR, actor=admin_user)
    assert me(issued.secret).json()["role"] == Role.EDITOR


def test_a_deactivated_user_is_refused_at_once(viewer: Any) -> None:
    issued = create_api_token(viewer, "laptop")
    assert me(issued.secret).status_code == 200
    viewer.is_active = False
    viewer.save()
    assert me(issued.secret).status_code == 401


@pytest.mark.parametrize("seconds", [0, 5])
def test_each_request_gets_its_own_user_object(viewer: Any, settings: Any, seconds: int) -> None:
    from accounts.services import user_for_token

    settings.TOKEN_CACHE_SECONDS = seconds
    issued = create_api_token(viewer, "laptop")
    first, second = user_for_token(issued.secret), user_for_token(issued.secret)
    assert first is not None and second is not None
    assert first[0] is not second[0] and first[0].pk == second[0].pk == viewer.pk
