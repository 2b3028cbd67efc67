"""Monitoring pages: the overview with health badges, and a deployment's charts over a chosen range."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from monitoring import rollups
from tests.conftest import make_user


def test_with_nothing_deployed_the_overview_says_what_to_do(viewer_client: Client) -> None:
    page = viewer_client.get("/monitoring/").content.decode()
    assert "Nothing to monitor yet" in page and "/api/v1/feedback" in page


def test_the_overview_badges_each_deployment_by_its_last_hour(
    viewer_client: Client, predict: Any, deployment: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    for i in range(10):
        predict(now - timedelta(minutes=5, seconds=i), status=500 if i < 2 else 200)
    rollups.fill_rollups()
    with django_assert_max_num_queries(10):
        page = viewer_client.get("/monitoring/").content.decode()
    assert 'href="/monitoring/churn-prod/"' in page
    assert 'class="health health-degraded"' in page and "error rate 20.0% above 5.0%" in page
    deployment.max_error_rate = 0.5
    deployment.save()
    assert 'class="health health-healthy"' in viewer_client.get("/monitoring/").content.decode()


def test_a_deployment_page_draws_its_charts_for_the_chosen_range(
    viewer_client: Client, predict: Any, deployment: Any, django_assert_max_num_queries: Any
) -> None:
    predict(timezone.now() - timedelta(minutes=3))
    rollups.fill_rollups()
    with django_assert_max_num_queries(12):
        page = viewer_client.get("/monitoring/churn-prod/", {"range": "1h"}).content.decode()
    for chart in ("latency-chart", "traffic-chart", "quality-chart"):
        assert f'id="{chart}" data-figure="' in page
    assert 'href="?range=1h" class="button small primary"' in page and 'data-refresh="30"' in page
    assert "No feedback in this range" in page
    empty = viewer_client.get("/monitoring/churn-prod/", {"start": "2020-01-01T00:00", "end": "2020-01-02T00:00"})
    assert "No traffic in this range" in empty.content.decode() and "data-refresh" not in empty.content.decode()
    bad = viewer_client.get("/monitoring/churn-prod/", {"start": "2026-12-02T00:00", "end": "2026-12-01T00:00"})
    assert bad.status_code == 200 and "The start must come before the end." in bad.content.decode()
    assert viewer_client.get("/monitoring/churn-prod/", {"start": "soon"}).status_code == 200


def test_outsiders_see_neither_the_deployment_nor_its_charts(
    deployment: Any, django_user_model: Any, settings: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    client = Client()
    client.force_login(make_user(django_user_model, "otto", "viewer"))
    assert client.get("/monitoring/churn-prod/").status_code == 404
    assert "churn-prod" not in client.get("/monitoring/").content.decode()
    assert Client().get("/monitoring/").status_code == 302  # anonymous: to the login page
