"""The monitoring pages in a real browser: charts drawn from rollups, the drift heatmap, the alerts page;
screenshots kept in test-artifacts/screenshots/."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deployments import services
from deployments.models import PredictionLog
from monitoring import alerts, rollups
from monitoring import services as monitoring
from monitoring.models import DriftResult
from registry import services as registry
from tests.browser.conftest import SCREENSHOTS, PageErrors
from tests.deployments.conftest import add_version, serve_now

pytestmark = [pytest.mark.browser]


@pytest.fixture
def watched(editor: Any, settings: Any, tmp_path: Path) -> Any:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    model = registry.create_registered_model("churn", owner=editor)
    add_version(model, editor)
    deployment = services.create_deployment("churn-prod", model, "1", owner=editor, environment="production")
    revision = serve_now(deployment, 1, actor=editor)
    rng = random.Random(3)
    now = timezone.now()
    rows = []
    for minute in range(55, 0, -1):
        for i in range(20):
            rows.append(PredictionLog(
                time=now - timedelta(minutes=minute, seconds=i), request_id=f"r{minute}-{i}", deployment=deployment,
                revision=revision, model_version=1, latency_ms=rng.lognormvariate(0.5, 0.4) + (8 if minute < 15 else 0),
                status=500 if rng.random() < (0.2 if minute < 15 else 0.01) else 200, outputs=[[rng.random()]],
            ))  # fmt: skip
    PredictionLog.objects.bulk_create(rows)
    monitoring.record_feedback([{"request_id": r.request_id, "label": int(rng.random() < 0.8)} for r in rows[::3]],
                               actor=editor)  # fmt: skip
    rollups.fill_rollups()
    for window in range(4):
        for feature, psi in (("age", 0.02 + 0.12 * window), ("income", 0.03), ("plan", 0.05 * window)):
            end = now - timedelta(minutes=15 * (3 - window))
            DriftResult.objects.create(
                deployment=deployment, window_end=end, window_epoch_minute=int(end.timestamp()) // 60,
                window_minutes=60, feature=feature, kind="numeric", n=400, psi=psi, ks=psi / 2,
                severity="major" if psi > 0.25 else "moderate" if psi >= 0.1 else "none", reference="training v1",
            )  # fmt: skip
    rule = monitoring.create_alert_rule(deployment, owner=editor, name="errors", metric="error_rate", threshold=0.05,
                                        window_minutes=15, min_requests=10)  # fmt: skip
    alerts.evaluate_rule(rule, now)
    return deployment


def test_the_monitoring_pages_draw_their_charts(
    page: Any, live_server: Any, editor: Any, log_in: Any, watched: Any, page_errors: PageErrors
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(editor)
    page.get_by_role("link", name="Monitoring", exact=True).click()
    expect(page.locator("#monitoring-table")).to_contain_text("churn-prod")
    expect(page.locator(".health")).to_have_text("Degraded")
    expect(page.locator("#alerts-link")).to_have_text("Alerts · 1 firing")
    page.screenshot(path=str(SCREENSHOTS / "monitoring-overview.png"), full_page=True)
    page.get_by_role("link", name="churn-prod").click()
    page.get_by_role("link", name="1h", exact=True).click()
    for chart in ("latency-chart", "traffic-chart", "quality-chart", "drift-chart"):
        expect(page.locator(f"#{chart}")).to_have_attribute("data-rendered", "true")
        expect(page.locator(f"#{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#drift-table")).to_contain_text("age")
    page.screenshot(path=str(SCREENSHOTS / "monitoring-deployment.png"), full_page=True)
    page.goto(f"{live_server.url}/monitoring/alerts/")
    expect(page.locator("#active-alerts")).to_contain_text("errors")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".messages")).to_contain_text("acknowledged")
    page.screenshot(path=str(SCREENSHOTS / "monitoring-alerts.png"), full_page=True)
    assert page_errors.all() == []
