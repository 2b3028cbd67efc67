from __future__ import annotations

from datetime import date
from typing import Any

from django.test import Client

from jobs.charts import jobs_per_day_figure
from jobs.models import JobStatus
from tests.jobs.factories import JobFactory


def test_the_jobs_page_says_what_to_do_when_there_are_none(viewer_client: Client) -> None:
    html = viewer_client.get("/jobs/").content.decode()
    assert "No jobs yet" in html


def test_the_jobs_page_lists_jobs_with_progress_bars_in_constant_queries(
    viewer_client: Client, editor: Any, django_assert_max_num_queries: Any
) -> None:
    JobFactory.create_batch(3, requested_by=editor, status=JobStatus.RUNNING, progress=40)
    JobFactory(status=JobStatus.SUCCEEDED, progress=100)
    with django_assert_max_num_queries(8):
        html = viewer_client.get("/jobs/").content.decode()
    assert html.count('class="progress"') == 4
    assert html.count("data-poll=") == 3  # only unfinished jobs poll


def test_a_job_page_shows_its_log_and_the_status_endpoint_feeds_the_bar(viewer_client: Client) -> None:
    job = JobFactory(status=JobStatus.RUNNING, progress=35, progress_message="step 7 of 20", log="hello\n")
    assert "hello" in viewer_client.get(f"/jobs/{job.pk}/").content.decode()
    status = viewer_client.get(f"/jobs/{job.pk}/status.json").json()
    assert (status["status"], status["progress"], status["message"], status["finished"]) == (
        "running",
        35,
        "step 7 of 20",
        False,
    )


def test_the_jobs_per_day_figure_stacks_statuses_by_day() -> None:
    rows = [
        {"day": date(2026, 11, 1), "succeeded": 2, "failed": 0},
        {"day": date(2026, 11, 2), "succeeded": 1, "failed": 1},
    ]
    figure = jobs_per_day_figure(rows)
    assert [t["name"] for t in figure["data"]] == ["Succeeded", "Failed"]
    assert figure["data"][0] == {
        "type": "bar",
        "name": "Succeeded",
        "x": ["2026-11-01", "2026-11-02"],
        "y": [2, 1],
        "marker": {"color": "#16a34a"},
    }
    assert figure["data"][1]["y"] == [0, 1]
    assert figure["layout"]["barmode"] == "stack"


def test_the_jobs_per_day_figure_of_no_jobs_has_no_traces() -> None:
    assert jobs_per_day_figure([{"day": date(2026, 11, 1)}])["data"] == []


def test_viewers_do_not_see_buttons_their_role_cannot_use(
    viewer_client: Client, editor_client: Client, editor: Any
) -> None:
    job = JobFactory(status=JobStatus.RUNNING, requested_by=editor)
    assert "Start a demo job" not in viewer_client.get("/jobs/").content.decode()
    assert "Cancel job" not in viewer_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Start a demo job" in editor_client.get("/jobs/").content.decode()
    assert "Cancel job" in editor_client.get(f"/jobs/{job.pk}/").content.decode()
    someone_elses = JobFactory(status=JobStatus.RUNNING)
    assert "Cancel job" not in editor_client.get(f"/jobs/{someone_elses.pk}/").content.decode()
    assert editor_client.post(f"/jobs/{someone_elses.pk}/cancel/").status_code == 403
