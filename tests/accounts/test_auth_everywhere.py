"""Every URL needs a session or a token, except an explicit allowlist.

The walk covers every pattern in the URLconf, so a route added later without protection fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.middleware import is_api_path
from tests.urlwalk import Route, all_routes

# The pipeline webhook takes a token of its own (X-Pipeline-Token), checked by the view: tests/pipelines.
PUBLIC = {"health", "ready", "accounts:login", "api-v1:pipeline-webhook"}

ROUTES = all_routes()


def test_the_walk_covers_the_whole_portal() -> None:
    names = {route.name for route in ROUTES}
    assert {"home", "jobs:index", "api-v1:job-list", "api-v1:schema", "metrics", "admin:index"} <= names
    assert len(ROUTES) > 40


def test_only_the_allowlisted_views_are_public() -> None:
    public = {route.name for route in ROUTES if getattr(route.callback, "portal_public", False)}
    assert public == PUBLIC


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in PUBLIC], ids=lambda r: f"{r.name} {r.path}")
def test_anonymous_visitors_are_turned_away(db: None, route: Route) -> None:
    for method in ("get", "post"):
        response = getattr(Client(), method)(route.path)
        if is_api_path(route.path):
            assert response.status_code == 401, (method, route.path, response.status_code)
            body = response.json()
            assert "error" in body or body.get("error_code") == "UNAUTHENTICATED"
            assert "Bearer" in response["WWW-Authenticate"]
        else:
            assert response.status_code == 302, (method, route.path, response.status_code)
            assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", ["/health", "/ready", "/accounts/login/"])
def test_the_allowlist_answers_anonymous_visitors(db: None, path: str) -> None:
    assert Client().get(path).status_code == 200


def test_a_deactivated_account_gets_nowhere(outsider: Any) -> None:
    from tests.conftest import PASSWORD

    client = Client()
    assert not client.login(username=outsider.username, password=PASSWORD)
    assert client.get("/jobs/").status_code == 302
    import base64

    basic = base64.b64encode(f"{outsider.username}:{PASSWORD}".encode()).decode()
    assert client.get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 401


def test_unknown_api_paths_answer_json_404_to_signed_in_users(viewer_client: Client) -> None:
    response = viewer_client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
