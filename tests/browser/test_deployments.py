"""Deploying from the browser: the rollout runs on a real Celery worker while the deployment page shows
its progress, steps and gates, then the serving split; a screenshot of each state is kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from deployments import services
from deployments.models import Rollout, RolloutStatus, Strategy
from registry import services as registry
from tests.browser.conftest import SCREENSHOTS, PageErrors, page_worker
from tests.deployments.conftest import add_version, serve_now
from tests.deployments.test_rollouts import GOOD
from tests.services import require_postgres

pytestmark = [pytest.mark.browser]


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


def test_a_canary_deployed_from_its_page_rolls_out_on_a_worker_while_the_page_follows(
    page: Any, live_server: Any, editor: Any, log_in: Any, tmp_path: Path, store: Path, page_errors: PageErrors
) -> None:
    require_postgres()
    model = registry.create_registered_model("churn", owner=editor)
    add_version(model, editor, GOOD)
    add_version(model, editor, GOOD)
    deployment = services.create_deployment(
        "churn-prod", model, "1", owner=editor, environment="production", strategy=Strategy.CANARY,
        canary_steps=[20, 60, 100], bake_seconds=3,
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    with page_worker(
        tmp_path, ARTIFACT_ROOT=str(store), ROLLOUT_WAIT_FOR_MODEL_SERVER="false", ROLLOUT_TICK_SECONDS="0.2"
    ):
        log_in(editor)
        page.get_by_role("link", name="Deployments", exact=True).click()
        expect(page.locator("#deployments-table")).to_contain_text("v1 · 100%")
        page.get_by_role("link", name="churn-prod").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("churn-prod")
        page.get_by_label("Version or alias to deploy").select_option("2")
        page.get_by_role("button", name="Deploy", exact=True).click()
        expect(page.locator(".messages")).to_contain_text("Rolling out version 2.")
        live = page.locator("#job-live")
        expect(live).to_contain_text("Rollout in progress: version 2")
        # The page polls the job; mid-rollout the message tells the step and the bake time left.
        expect(live.locator('[data-field="message"]')).to_contain_text(re.compile(r"step \d of 3"), timeout=60_000)
        # The steps and the split refresh in place while the rollout moves.
        expect(page.locator("#rollout-state .steps li.current")).to_have_text("60%", timeout=60_000)
        expect(page.locator("#serving .traffic-part")).to_have_text(["v2 · 60%", "v1 · 40%"])
        page.screenshot(path=str(SCREENSHOTS / "deployment-rollout-live.png"), full_page=True)
        # When the job ends the page reloads on its own and shows the outcome and the new split.
        expect(page.locator("#rollout")).to_contain_text("Last rollout: version 2", timeout=60_000)
        expect(page.locator("#rollout-status")).to_have_text("Succeeded")
        expect(page.locator("#serving .traffic-part")).to_have_text(["v2 · 100%"])
        expect(page.locator("#rollout .steps li.done")).to_have_count(3)
        expect(page.locator("#rollout #gates")).to_contain_text("input example")
        expect(page.locator("#timeline")).to_contain_text("version 2 at 60%, version 1 at 40%")
        page.screenshot(path=str(SCREENSHOTS / "deployment-rolled-out.png"), full_page=True)
        # One click serves the earlier version again.
        page.get_by_role("button", name="Serve v1 again").first.click()
        expect(page.locator(".messages")).to_contain_text("Version 1 serves all the traffic again.")
        expect(page.locator("#serving .traffic-part")).to_have_text(["v1 · 100%"])
    rollout = Rollout.objects.get(revision__model_version__version=2)
    assert rollout.status == RolloutStatus.SUCCEEDED and rollout.job.attempts == 1
    assert page_errors.all() == []
