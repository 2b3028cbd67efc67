"""The dashboard's jobs-per-day chart, drawn by Plotly.js in a real browser."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.browser.conftest import PageErrors

pytestmark = [pytest.mark.browser]

# (days ago, status) of each finished job
FINISHED_JOBS = [
    (0, JobStatus.SUCCEEDED),
    (0, JobStatus.SUCCEEDED),
    (0, JobStatus.FAILED),
    (2, JobStatus.SUCCEEDED),
    (5, JobStatus.CANCELLED),
    (5, JobStatus.SUCCEEDED),
    (5, JobStatus.SUCCEEDED),
    (5, JobStatus.SUCCEEDED),
    (9, JobStatus.FAILED),
]


def create_finished_jobs() -> Counter[tuple[str, str]]:
    """Insert the jobs; return how many there are per (ISO day, status)."""
    now = timezone.now()
    expected: Counter[tuple[str, str]] = Counter()
    for days_ago, status in FINISHED_JOBS:
        when = now - timedelta(days=days_ago)
        job = Job.objects.create(type="demo.sleep", status=status, progress=100, attempts=1)
        # created_at is auto_now_add, so it can only be moved back after the insert.
        Job.objects.filter(pk=job.pk).update(created_at=when, started_at=when, finished_at=when)
        expected[(timezone.localdate(when).isoformat(), str(status))] += 1
    return expected


def test_the_dashboard_draws_the_jobs_chart_with_data(
    page: Any, live_server: Any, viewer: Any, log_in: Any, page_errors: PageErrors
) -> None:
    expected = create_finished_jobs()

    log_in(viewer)
    chart = page.locator("#jobs-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".main-svg").first).to_be_visible()
    assert chart.locator(".bars .point").count() > 0

    traces = page.evaluate(
        "() => document.getElementById('jobs-chart').data.map(t => ({name: t.name, x: t.x, y: t.y}))"
    )
    drawn: Counter[tuple[str, str]] = Counter()
    for trace in traces:
        for day, count in zip(trace["x"], trace["y"], strict=True):
            if count:
                drawn[(day, trace["name"].lower())] += count
    assert drawn == expected
    assert len(traces[0]["x"]) == 14, "two weeks of days, gaps included"

    # The chart fills its card without spilling out of it.
    card = page.locator(".card", has=chart).bounding_box()
    plot = chart.locator(".main-svg").first.bounding_box()
    assert card is not None and plot is not None
    assert plot["x"] >= card["x"] and plot["x"] + plot["width"] <= card["x"] + card["width"] + 0.5
    assert plot["width"] > card["width"] * 0.8

    expect(page.locator(".stat", has_text="Jobs in total").locator(".stat-value")).to_have_text(str(len(FINISHED_JOBS)))
    assert page_errors.all() == []
