"""Training from the browser on a real Celery worker: the form queues the job, its page shows the progress
and the learning curves as epochs end, then the test scores; a screenshot of each state is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from experiments import services as tracking
from tests.browser.conftest import SCREENSHOTS, PageErrors, page_worker
from tests.datasets.factories import push
from tests.experiments.test_training import churn_csv
from tests.services import require_postgres

pytestmark = [pytest.mark.browser]


def test_a_model_trained_from_the_form_shows_its_curves_live(
    page: Any, live_server: Any, editor: Any, log_in: Any, tmp_path: Path, settings: Any, page_errors: PageErrors
) -> None:
    require_postgres()
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    push("churn", churn_csv(2000), filename="churn.csv", author=editor)
    tracking.create_experiment("churn", owner=editor)
    with page_worker(tmp_path, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT)):
        log_in(editor)
        page.get_by_role("link", name="Experiments", exact=True).click()
        page.get_by_role("link", name="Train a model").click()
        page.get_by_label("Target column").fill("churned")
        page.get_by_label("Parameters (JSON; empty for the defaults)").fill('{"epochs": 40, "learning_rate": 0.01}')
        page.get_by_role("button", name="Start training").click()
        expect(page.locator(".messages")).to_contain_text("queued")
        expect(page.locator("#curves-chart")).to_have_attribute("data-rendered", "true", timeout=90_000)
        expect(page.locator('#job-live [data-field="message"]')).to_contain_text("epoch", timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "training-live.png"), full_page=True)
        expect(page.locator("#test-scores")).to_contain_text("test_accuracy", timeout=120_000)
        page.screenshot(path=str(SCREENSHOTS / "training-done.png"), full_page=True)
    assert page_errors.all() == []


def test_a_sweep_from_the_form_fills_its_page_live_and_registers_the_best_model(
    page: Any, live_server: Any, editor: Any, log_in: Any, tmp_path: Path, settings: Any, page_errors: PageErrors
) -> None:
    from registry.models import RegisteredModel

    require_postgres()
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    push("churn", churn_csv(600), filename="churn.csv", author=editor)
    tracking.create_experiment("churn", owner=editor)
    with page_worker(tmp_path, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT)):
        log_in(editor)
        page.goto(f"{live_server.url}/experiments/")
        page.get_by_role("link", name="Sweeps").click()
        expect(page.locator(".empty-state")).to_contain_text("No sweeps yet")
        page.get_by_role("link", name="New sweep").click()
        page.get_by_label("Name (optional)").fill("width and rate")
        page.get_by_label("Target column").fill("churned")
        page.get_by_label("Trainer").select_option("keras_mlp_classifier")
        page.locator("#params-input").fill('{"epochs": 3}')
        page.locator("#space-input").fill('{"learning_rate": [0.003, 0.03], "hidden_units": [[8], [32, 16]]}')
        page.get_by_role("button", name="Start the sweep").click()
        expect(page.locator(".messages")).to_contain_text("started")
        expect(page.locator("#sweep-state")).to_have_text("finished", timeout=180_000)
        expect(page.locator("#sweep-chart")).to_have_attribute("data-rendered", "true", timeout=10_000)
        expect(page.locator("#sweep-chart .parcoords")).to_have_count(1)
        expect(page.locator("#trials-table tbody tr")).to_have_count(4)
        page.screenshot(path=str(SCREENSHOTS / "sweep-done.png"), full_page=True)
        page.get_by_role("button", name="Register the best model").click()
        expect(page.locator(".messages")).to_contain_text("churned-model")
    assert RegisteredModel.objects.get(name="churned-model").versions.count() == 1
    assert page_errors.all() == []
