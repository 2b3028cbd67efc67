from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from accounts.models import ApiToken, AuditEvent, Profile
from accounts.services import create_api_token
from jobs.models import Job
from mlops_portal.views import server_error
from tests.jobs.factories import JobFactory


def test_every_portal_model_is_in_the_admin() -> None:
    for model in (Profile, ApiToken, AuditEvent, Job):
        assert admin.site.is_registered(model), model


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/auth/user/",
        "/admin/accounts/apitoken/",
        "/admin/accounts/auditevent/?q=token",
        "/admin/accounts/profile/",
        "/admin/jobs/job/?status__exact=running",
    ],
)
def test_admin_lists_render_for_an_administrator(admin_client: Client, admin_user: Any, path: str) -> None:
    create_api_token(admin_user, "x")
    JobFactory()
    assert admin_client.get(path).status_code == 200


def test_admin_is_closed_to_non_staff(viewer_client: Client) -> None:
    assert viewer_client.get("/admin/").status_code == 302


def test_the_500_page_renders_for_pages_and_json_for_apis(db: None) -> None:
    page = server_error(RequestFactory().get("/jobs/"))
    assert page.status_code == 500 and b"Something went wrong" in page.content
    api = server_error(RequestFactory().get("/api/v1/jobs/"))
    assert api.status_code == 500 and b'"server_error"' in api.content
