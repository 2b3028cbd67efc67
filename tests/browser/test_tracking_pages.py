"""The tracking dashboard in a real browser: runs table, run page charts, live runs, compare."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from experiments import services
from experiments.models import Experiment, LifecycleStage, Run, RunStatus
from experiments.services import MetricPoint
from tests.browser.conftest import PageErrors, host_of
from tests.experiments.factories import T0, ExperimentFactory, RunFactory

pytestmark = [pytest.mark.browser]

LIVE_TIMEOUT_MS = 20_000  # the run page polls every 3 s, then reloads once the run is over


def sweep(owner: Any) -> tuple[Experiment, list[Run]]:
    experiment = ExperimentFactory(name="cifar10-resnet", owner=owner)
    runs = []
    for index, (lr, optimizer) in enumerate([("0.1", "sgd"), ("0.01", "adam"), ("0.001", "adam")]):
        run = RunFactory(
            experiment=experiment,
            run_name=f"resnet-{optimizer}-{lr}",
            start_time=T0 + index * 1000,
            params={"lr": lr, "optimizer": optimizer},
            status="FINISHED",
            end_time=T0 + index * 1000 + 65_000,
        )
        # 2,000 steps: more than the 1,000 points a chart asks for, so the server downsamples.
        points = [
            MetricPoint("train/loss", 2.0 * math.exp(-step / (300 + 200 * index)) + 0.1, T0 + step, step)
            for step in range(2000)
        ]
        for start in range(0, len(points), 1000):
            services.log_metrics(run, points[start : start + 1000])
        services.log_metrics(run, [MetricPoint("accuracy", 0.7 + index * 0.1, T0 + 2000, 2000)])
        runs.append(run)
    return experiment, runs


def test_the_runs_table_leads_to_a_run_page_whose_charts_draw_downsampled_data(
    page: Any, live_server: Any, viewer: Any, editor: Any, log_in: Any, page_errors: PageErrors
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    experiment, _ = sweep(editor)

    log_in(viewer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Experiments", exact=True).click()
    page.get_by_role("link", name="cifar10-resnet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("cifar10-resnet")
    table = page.locator("#runs-table")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tbody tr").first).to_contain_text("resnet-adam-0.001")  # newest first

    table.get_by_role("link", name="accuracy").click()  # sort by the metric, largest first
    expect(table.locator("th[aria-sort=descending]")).to_contain_text("accuracy")
    expect(table.locator("td.run-name")).to_have_text(["resnet-adam-0.001", "resnet-adam-0.01", "resnet-sgd-0.1"])

    page.locator("#run-filter").fill("params.optimizer = 'sgd' OR metrics.accuracy > 0.85")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("td.run-name")).to_have_text(["resnet-adam-0.001", "resnet-sgd-0.1"])

    page.locator("#run-filter").fill("metrics.accuracy >> 1")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#filter-error")).to_contain_text("Invalid filter")

    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")
    page.get_by_role("link", name="resnet-adam-0.01").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("resnet-adam-0.01")
    chart = page.locator("[data-metric-chart*='train/loss']")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".main-svg").first).to_be_visible()
    assert chart.locator(".scatterlayer .trace path.js-line").count() == 1
    expect(page.locator(".metric-chart", has=chart).locator("[data-chart-note]")).to_have_text("1,000 of 2,000 points")
    drawn = chart.evaluate("el => ({n: el.data[0].x.length, first: el.data[0].x[0], last: el.data[0].x.at(-1)})")
    assert drawn == {"n": 1000, "first": 0, "last": 1999}
    expect(page.locator("[data-run-poll]")).to_have_count(0)  # a finished run does not poll

    assert page_errors.all() == []
    assert [url for url in requested if host_of(url) != host_of(live_server.url)] == []


def test_selected_runs_open_the_compare_view_with_its_charts(
    page: Any, live_server: Any, viewer: Any, editor: Any, log_in: Any, page_errors: PageErrors
) -> None:
    experiment, runs = sweep(editor)
    log_in(viewer)
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")
    compare = page.get_by_role("button", name="Compare")
    expect(compare).to_be_disabled()
    page.get_by_label("Select all runs on this page").check()
    expect(page.locator("[data-selection-count]")).to_have_text("3 selected")
    compare.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Compare runs")
    for chart_id in ("overlay-chart", "parallel-chart", "scatter-chart"):
        chart = page.locator(f"#{chart_id}")
        expect(chart).to_have_attribute("data-rendered", "true")
        expect(chart.locator(".main-svg").first).to_be_visible()
    names = page.locator("#overlay-chart").evaluate("el => el.data.map(t => t.name)")
    assert sorted(names) == sorted(str(run) for run in runs)
    expect(page.locator("#diff-table tr.differs")).to_have_count(4)  # lr, optimizer, accuracy, train/loss

    page.locator("select[name=y]").select_option("train/loss")
    expect(page).to_have_url(re.compile(r"y=train%2Floss"))
    expect(page.locator("#scatter-chart")).to_have_attribute("data-rendered", "true")
    assert page_errors.all() == []


def test_a_running_run_page_follows_the_run_until_it_finishes(
    page: Any, live_server: Any, editor: Any, log_in: Any, page_errors: PageErrors
) -> None:
    experiment = ExperimentFactory(name="live", owner=editor)
    run = RunFactory(experiment=experiment, run_name="still-training", metrics={"loss": [1.0, 0.8, 0.6]})
    log_in(editor)
    page.goto(f"{live_server.url}/experiments/runs/{run.pk}/")
    expect(page.locator("[data-run-poll]")).to_have_count(1)
    expect(page.locator("h1 [data-field=status]")).to_have_text("Running")
    chart = page.locator("[data-metric-chart]")
    expect(chart).to_have_attribute("data-points", "3")

    services.log_metrics(run, [MetricPoint("loss", 0.5, T0 + 10, 3), MetricPoint("loss", 0.4, T0 + 11, 4)])
    expect(chart).to_have_attribute("data-points", "5", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('tr[data-metric="loss"] [data-field="value"]')).to_have_text("0.4")

    services.update_run(run, status=RunStatus.FINISHED, end_time=T0 + 60_000, run_name=None)
    expect(page.locator("h1 [data-field=status]")).to_have_text("Finished", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("[data-run-poll]")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)  # reloaded, no longer polling

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete run").click()
    expect(page.get_by_role("button", name="Restore run")).to_be_visible()
    run.refresh_from_db()
    assert run.lifecycle_stage == LifecycleStage.DELETED
    assert page_errors.all() == []
