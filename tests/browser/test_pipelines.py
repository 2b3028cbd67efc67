"""Pipelines in the browser on a real Celery worker: define one from the form, run it now, and watch its run
page follow the DAG to the end with the Gantt timeline drawn; a screenshot of each is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, PageErrors, page_worker

pytestmark = [pytest.mark.browser]

DEFINITION = """params: {seconds: 1}
steps:
  - name: prepare
    type: function
    args: {function: pipelines.functions.wait, kwargs: {seconds: "{{ params.seconds }}"}}
  - name: left
    type: function
    needs: [prepare]
    args: {function: pipelines.functions.echo, kwargs: {side: left}}
  - name: right
    type: function
    needs: [prepare]
    args: {function: pipelines.functions.wait, kwargs: {seconds: 1}}
  - name: join
    type: function
    needs: [left, right]
    args: {function: examples.founding_airflow.deploy}
"""


def test_a_pipeline_defined_in_the_form_runs_and_its_page_follows_it(
    page: Any, live_server: Any, editor: Any, log_in: Any, tmp_path: Path, page_errors: PageErrors
) -> None:
    with page_worker(tmp_path):
        log_in(editor)
        page.get_by_role("link", name="Pipelines", exact=True).click()
        expect(page.locator(".empty-state")).to_contain_text("No pipelines yet")
        page.get_by_role("link", name="New pipeline").click()
        page.get_by_label("Name", exact=True).fill("nightly")
        page.locator("#definition-input").fill(DEFINITION)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".messages")).to_contain_text("Saved version 1 of nightly")
        expect(page.locator("#dag-chart")).to_have_attribute("data-rendered", "true")
        page.get_by_role("button", name="Run now").click()
        expect(page.locator(".messages")).to_contain_text("Run 1 started")
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90_000)
        expect(page.locator("#gantt-chart")).to_have_attribute("data-rendered", "true", timeout=10_000)
        expect(page.locator("#steps-table tbody tr")).to_have_count(4)
        expect(page.locator("#step-join")).to_contain_text("Succeeded")
        page.screenshot(path=str(SCREENSHOTS / "pipeline-run.png"), full_page=True)
        page.get_by_role("link", name="nightly").first.click()
        expect(page.locator("#runs-table")).to_contain_text("Succeeded")
        page.screenshot(path=str(SCREENSHOTS / "pipeline.png"), full_page=True)
    assert page_errors.all() == []
