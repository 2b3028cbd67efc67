"""Logging in, moving around the portal, the API docs and the 404 page, in a real browser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from tests.browser.conftest import PageErrors, host_of
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser]

# (navigation label, the page's heading)
SECTIONS = [
    ("Experiments", "Experiments"),
    ("Datasets", "Datasets"),
    ("Models", "Models"),
    ("Deployments", "Deployments"),
    ("Monitoring", "Monitoring"),
    ("Pipelines", "Pipelines"),
    ("Jobs", "Jobs"),
]


def test_a_visitor_is_sent_to_the_login_page_and_can_log_in(
    page: Any, live_server: Any, django_user_model: Any
) -> None:
    make_user(django_user_model, "vera", Role.VIEWER)

    page.goto(f"{live_server.url}/jobs/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/jobs/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("nav.mainnav")).to_have_count(0)

    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".form-error")).to_contain_text("didn't match")

    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/jobs/")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()

    page.get_by_role("link", name="MLOps Portal").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".usermenu")).to_contain_text("vera")


def test_every_top_level_page_renders_with_the_navigation(
    page: Any, live_server: Any, admin_user: Any, log_in: Any, page_errors: PageErrors
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(admin_user)
    nav = page.get_by_role("navigation", name="Main")

    for label, heading in SECTIONS:
        nav.get_by_role("link", name=label, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page).to_have_title(f"{heading} · MLOps Portal")
        link = nav.get_by_role("link", name=label, exact=True)
        expect(link).to_have_class(re.compile(r"\bactive\b"))
        expect(link).to_have_attribute("aria-current", "page")
        expect(nav.locator("a.active")).to_have_count(1)

    nav.get_by_role("link", name="Admin", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MLOps Portal API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()

    assert page_errors.all() == []
    outside = [url for url in requested if host_of(url) != host_of(live_server.url)]
    assert outside == [], "everything must be served by the portal itself"
    assert any("swagger-ui" in url for url in requested)


def test_the_404_page_is_friendly(page: Any, live_server: Any, viewer: Any, log_in: Any) -> None:
    log_in(viewer)

    response = page.goto(f"{live_server.url}/no/such/page/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    page.get_by_role("link", name="Go to the dashboard").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
