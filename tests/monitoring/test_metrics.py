from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.services import create_api_token
from jobs.models import JobStatus
from tests.jobs.factories import JobFactory


def test_metrics_expose_the_request_histogram_and_job_counts(viewer: Any) -> None:
    JobFactory.create_batch(2, status=JobStatus.SUCCEEDED)
    JobFactory(status=JobStatus.FAILED)
    JobFactory(status=JobStatus.RUNNING)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(viewer, 'prometheus').secret}")
    client.get("/api/v1/jobs/")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/jobs/",status="200"}' in text
    assert 'mlops_jobs{status="succeeded",type="demo.sleep"} 2.0' in text
    assert 'mlops_jobs{status="running",type="demo.sleep"} 1.0' in text
    assert 'mlops_jobs_finished_total{status="failed",type="demo.sleep"} 1.0' in text
    assert 'mlops_jobs_finished_total{status="running"' not in text


def test_unmatched_paths_share_one_route_label(viewer_client: Client) -> None:
    viewer_client.get("/a/random/path/1")
    viewer_client.get("/a/random/path/2")
    text = viewer_client.get("/metrics").content.decode()
    assert 'route="unmatched",status="404"' in text
    assert "/a/random/path" not in text


def test_route_labels_are_readable_patterns() -> None:
    from monitoring.middleware import route_label

    assert route_label("api/v1/jobs/(?P<pk>[^/.]+)/$") == "/api/v1/jobs/<pk>/"
    assert route_label("jobs/<int:pk>/status.json") == "/jobs/<int:pk>/status.json"
    assert route_label("admin/(?P<app_label>accounts|jobs)/$") == "/admin/<app_label>/"
