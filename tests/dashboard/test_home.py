from __future__ import annotations

import json
from typing import Any

from django.test import Client

from accounts.services import create_api_token
from jobs.models import JobStatus
from tests.jobs.factories import JobFactory


def test_the_home_page_shows_real_counts_activity_and_the_jobs_chart(
    viewer_client: Client, viewer: Any, django_assert_max_num_queries: Any
) -> None:
    JobFactory.create_batch(2, status=JobStatus.RUNNING)
    JobFactory(status=JobStatus.QUEUED)
    create_api_token(viewer, "laptop")
    with django_assert_max_num_queries(12):
        response = viewer_client.get("/")
    cards = {card["label"]: card["value"] for card in response.context["cards"]}
    assert cards["Jobs running"] == 2 and cards["Jobs in total"] == 3
    html = response.content.decode()
    assert "token.create" in html  # recent activity comes from the audit log
    figure = json.loads(response.context["jobs_figure"])
    assert sum(sum(trace["y"]) for trace in figure["data"]) == 3
    assert 'id="jobs-chart"' in html and "/static/vendor/plotly.min.js" in html


def test_the_home_page_of_a_new_portal_says_what_to_do_next(viewer_client: Client) -> None:
    html = viewer_client.get("/").content.decode()
    assert "No jobs have run yet" in html and "No activity yet" in html


def test_plotly_is_served_from_the_portal_itself(viewer_client: Client) -> None:
    response = viewer_client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()


def test_every_section_page_has_the_navigation_and_an_empty_state(viewer_client: Client) -> None:
    for path, heading in [
        ("/experiments/", "Experiments"),
        ("/datasets/", "Datasets"),
        ("/models/", "Models"),
        ("/deployments/", "Deployments"),
        ("/monitoring/", "Monitoring"),
        ("/pipelines/", "Pipelines"),
    ]:
        html = viewer_client.get(path).content.decode()
        assert f"<h1>{heading}</h1>" in html
        assert 'class="active"' in html and "empty-state" in html


def test_unknown_pages_get_the_friendly_404(viewer_client: Client) -> None:
    response = viewer_client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
