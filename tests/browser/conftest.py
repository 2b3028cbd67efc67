"""Headless Chromium for the browser tests: one browser for all of them, a fresh page per test.

Debian's Chromium is used as is (nothing is downloaded). A failing test leaves a screenshot and the
page's HTML in test-artifacts/screenshots/ so CI shows what the browser saw.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import PASSWORD
from tests.services import ROOT, Process, child_env, require_postgres, running, skip_or_fail, start_worker

CHROMIUM = Path(os.environ.get("PORTAL_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture can tell at teardown that the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Chromium, launched once and closed after the last browser test (all of them live in this package)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"browser tests need Chromium at {CHROMIUM}")
    # While Playwright's sync API is open, an asyncio loop counts as running on the main thread, so
    # Django refuses ORM calls from test bodies ("you cannot call this from an async context").
    # Allow them only while the browser is open: the variable must not leak into later tests or into
    # `manage.py check --deploy` subprocesses, which reject it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()


@dataclass
class PageErrors:
    """What went wrong in the page while a test drove it: console errors, uncaught exceptions, and
    responses with an error status (the console only says "failed to load resource", not which)."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.console + self.exceptions + self.responses


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, page_errors: PageErrors) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda msg: page_errors.console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page_errors.exceptions.append(str(exc)))
    page.on("response", lambda r: page_errors.responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            _save_artifacts(page, request.node.name)
        context.close()


def _save_artifacts(page: Any, test_name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", test_name)
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"), full_page=True)
        (SCREENSHOTS / f"{stem}.html").write_text(page.content(), encoding="utf-8")
    except Exception as exc:  # a crashed page must not hide the test's own failure
        print(f"could not save the page of {test_name}: {exc}")


@pytest.fixture
def log_in(page: Any, live_server: Any) -> Callable[[Any], None]:
    """Log a user in through the login form, as a person would, and wait for the dashboard."""

    def log_in_as(user: Any) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")

    return log_in_as


def host_of(url: str) -> str:
    return urlsplit(url).netloc


@contextmanager
def page_worker(tmp_path: Path, **env: str) -> Iterator[Process]:
    """A real Celery worker on PostgreSQL and Redis for the pages under test to drive; its output is printed
    when the test ends, and the screenshots folder is ready."""
    require_postgres()
    environment = child_env(tmp_path, **env)
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    worker = start_worker(environment)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running(worker):
        try:
            yield worker
        finally:
            print(worker.output())
