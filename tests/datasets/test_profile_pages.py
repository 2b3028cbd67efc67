"""Profile and diff pages, their API, and the chart builders' payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from datasets import charts
from datasets.models import DatasetProfile
from jobs import runner
from tests.datasets.factories import IRIS, csv_rows, push

pytestmark = pytest.mark.django_db

PROFILE = "/api/v1/datasets/iris/versions/1/profile"


@pytest.fixture
def inline_jobs(settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    return settings


def run_profile(version: Any) -> None:
    runner.execute(DatasetProfile.objects.get(version=version).job_id)


def test_anonymous_callers_get_401_from_the_profile_and_diff_api(editor: Any) -> None:
    push(author=editor)
    for path in [PROFILE, "/api/v1/datasets/iris/diff?a=1&b=1"]:
        assert Client().get(path).status_code == 401
    assert Client().post(PROFILE).status_code == 401


def test_viewers_read_a_profile_with_its_jobs_progress_but_cannot_rerun_it(
    editor: Any, viewer_client: Client, inline_jobs: Any
) -> None:
    version = push(author=editor)
    body = viewer_client.get(PROFILE).json()
    assert body["status"] == "queued" and body["profile"] is None
    assert body["job"]["status"] == "queued" and body["job"]["url"] == f"/jobs/{body['job']['id']}/"
    run_profile(version)
    body = viewer_client.get(PROFILE).json()
    assert body["status"] == "ready" and body["profile"]["rows"] == 3 and body["job"]["progress"] == 100
    assert [c["name"] for c in body["profile"]["columns"]] == ["sepal_length", "sepal_width", "species"]
    response = viewer_client.post(PROFILE)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_editors_rerun_a_profile_once_at_a_time(editor: Any, editor_client: Client, inline_jobs: Any) -> None:
    version = push(author=editor)
    response = editor_client.post(PROFILE)
    assert response.status_code == 200 and response.json()["started"] is False  # the push's job is still queued
    run_profile(version)
    response = editor_client.post(PROFILE)
    assert response.status_code == 202
    body = response.json()
    assert body["started"] is True and body["status"] == "queued" and body["profile"]["rows"] == 3


def test_the_diff_api_compares_two_versions_and_defaults_to_the_latest_and_its_parent(
    editor: Any, viewer_client: Client
) -> None:
    push(author=editor)
    push(data=IRIS + b"7.0,3.2,virginica\n", author=editor)
    body = viewer_client.get("/api/v1/datasets/iris/diff?a=1&b=2").json()
    assert body["rows"] == {"a": 3, "b": 4, "change": 1, "change_pct": pytest.approx(33.33, abs=0.01)}
    assert {row["name"] for row in body["columns"]} == {"sepal_length", "sepal_width", "species"}
    assert all(row["severity"] in ("none", "moderate", "major") for row in body["columns"])
    assert viewer_client.get("/api/v1/datasets/iris/diff").json()["a"]["number"] == 1
    assert viewer_client.get("/api/v1/datasets/iris/diff?a=9&b=2").status_code == 404
    bad = viewer_client.get("/api/v1/datasets/iris/diff?a=x")
    assert bad.status_code == 400 and "version numbers" in bad.json()["error"]["message"]


def test_the_version_page_polls_the_running_job_then_shows_the_profile(
    editor: Any, editor_client: Client, inline_jobs: Any
) -> None:
    version = push(author=editor)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    job_id = DatasetProfile.objects.get(version=version).job_id
    assert f'data-poll="/jobs/{job_id}/status.json"' in html and 'id="job-live"' in html
    assert 'id="profile-table"' not in html
    run_profile(version)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    assert "data-poll" not in html and 'id="profile-table"' in html
    assert "vendor/plotly.min.js" in html and html.count("data-figure=") == 3
    assert '<th class="num">p50</th>' in html and "Profile again" in html


def test_the_version_page_stays_within_a_query_budget(
    editor: Any, viewer_client: Client, inline_jobs: Any, django_assert_max_num_queries: Any
) -> None:
    version = push(data=csv_rows(200), author=editor)
    run_profile(version)
    # The whole page (session, user, role, version, lineage) stays small; the profile and its job are one query.
    with django_assert_max_num_queries(12) as captured:
        html = viewer_client.get("/datasets/iris/versions/1/").content.decode()
    profile_queries = [q for q in captured.captured_queries if "datasetprofile" in q["sql"] or "jobs_job" in q["sql"]]
    assert len(profile_queries) == 1
    assert 'id="profile-table"' in html and "Profile again" not in html  # viewers cannot re-run


def test_the_diff_page_renders_the_picker_the_changes_and_overlaid_charts(
    editor: Any, viewer_client: Client, inline_jobs: Any
) -> None:
    first = push(data=csv_rows(100), author=editor)
    second = push(data=csv_rows(150, start=500).replace(b"id,value", b"id,value"), author=editor)
    run_profile(first)
    run_profile(second)
    html = viewer_client.get("/datasets/iris/diff?a=1&b=2").content.decode()
    assert 'id="diff-picker"' in html and 'id="shift-table"' in html and 'id="schema-changes"' in html
    assert "100 → 150" in html and "No schema changes" in html
    assert html.count("data-figure=") == 2 and "major" in html
    timeline = viewer_client.get("/datasets/iris/").content.decode()
    assert 'href="/datasets/iris/diff?a=1&amp;b=2">diff vs v1</a>' in timeline


def test_the_diff_page_of_a_dataset_with_one_version_says_a_diff_needs_two(editor: Any, viewer_client: Client) -> None:
    push(author=editor)
    html = viewer_client.get("/datasets/iris/diff").content.decode()
    assert "A diff needs two versions" in html


def test_chart_builders_return_the_exact_plotly_payloads() -> None:
    numeric = {"name": "x", "kind": "numeric", "histogram": {"edges": [0.0, 1.0, 3.0], "counts": [4, 6]}}
    figure = charts.column_figure(numeric)
    assert figure is not None
    assert figure["data"] == [
        {
            "type": "bar",
            "x": [0.5, 2.0],
            "y": [4, 6],
            "width": [1.0, 2.0],
            "marker": {"color": charts.BASE_COLOUR},
            "hovertemplate": "%{x}: %{y} rows<extra></extra>",
        }
    ]
    text = {"name": "c", "kind": "categorical", "top": [{"value": "a", "count": 3}, {"value": "b", "count": 1}]}
    bars = charts.column_figure(text)
    assert bars is not None and bars["data"][0]["orientation"] == "h"
    assert (bars["data"][0]["y"], bars["data"][0]["x"]) == (["b", "a"], [1, 3])  # most frequent on top
    assert charts.column_figure({"name": "d", "kind": "temporal"}) is None
    row = {"name": "x", "distribution": {"kind": "bins", "edges": [0.0, 1.0, 2.0], "a": [0.5, 0.5], "b": [0.2, 0.8]}}
    overlay = charts.shift_figure(row, "v1", "v2")
    assert overlay is not None and overlay["layout"]["barmode"] == "overlay"
    assert [(t["name"], t["y"], t["x"]) for t in overlay["data"]] == [
        ("v1", [0.5, 0.5], [0.5, 1.5]),
        ("v2", [0.2, 0.8], [0.5, 1.5]),
    ]
    grouped = charts.shift_figure(
        {"name": "c", "distribution": {"kind": "categories", "categories": ["a", "(other)"], "a": [1, 0], "b": [0, 1]}},
        "v1",
        "v2",
    )
    assert grouped is not None and grouped["layout"]["barmode"] == "group"
    assert grouped["data"][1] == {
        "type": "bar",
        "name": "v2",
        "x": ["a", "(other)"],
        "y": [0, 1],
        "marker": {"color": charts.OTHER_COLOUR},
        "hovertemplate": "v2 %{x}: %{y:.1%}<extra></extra>",
    }
    json.dumps(grouped)
