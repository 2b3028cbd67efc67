from __future__ import annotations

from typing import Any

from django.test import Client

from jobs.models import Job, JobStatus
from tests.jobs.factories import JobFactory


def test_starting_a_job_through_the_api_answers_202_with_the_row(editor_client: Client) -> None:
    response = editor_client.post(
        "/api/v1/jobs/", {"type": "demo.sleep", "params": {"steps": 3}}, content_type="application/json"
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["type"], body["status"], body["progress"], body["requested_by"]) == (
        "demo.sleep",
        "queued",
        0,
        "erin",
    )
    assert body["params"] == {"steps": 3, "step_seconds": 0.25}
    assert Job.objects.get(pk=body["id"]).requested_by.username == "erin"


def test_bad_parameters_get_a_400_that_names_the_field_and_the_limit(editor_client: Client) -> None:
    response = editor_client.post(
        "/api/v1/jobs/", {"type": "demo.sleep", "params": {"steps": 5000}}, content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == "params.steps"
    assert "1000" in error["message"]
    assert Job.objects.count() == 0


def test_an_unknown_job_type_is_a_400_naming_what_can_be_started(editor_client: Client) -> None:
    response = editor_client.post("/api/v1/jobs/", {"type": "rm -rf"}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "type"
    assert "demo.sleep" in error["message"]


def test_malformed_json_is_a_400_not_a_500(editor_client: Client) -> None:
    response = editor_client.post("/api/v1/jobs/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_the_job_list_paginates_filters_and_avoids_n_plus_one(
    viewer_client: Client, editor: Any, django_assert_max_num_queries: Any
) -> None:
    JobFactory.create_batch(30, requested_by=editor)
    JobFactory.create_batch(5, status=JobStatus.FAILED)
    with django_assert_max_num_queries(6):
        page = viewer_client.get("/api/v1/jobs/?page_size=10").json()
    assert page["count"] == 35 and len(page["results"]) == 10 and page["next"]
    failed = viewer_client.get("/api/v1/jobs/?status=failed").json()
    assert failed["count"] == 5
    bad = viewer_client.get("/api/v1/jobs/?status=exploded")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


def test_a_job_can_be_cancelled_through_the_api_by_whoever_started_it(
    editor_client: Client, editor: Any, admin_client: Client
) -> None:
    job = JobFactory(requested_by=editor)
    response = editor_client.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    someone_elses = JobFactory()
    assert editor_client.post(f"/api/v1/jobs/{someone_elses.pk}/cancel/").status_code == 403
    assert admin_client.post(f"/api/v1/jobs/{someone_elses.pk}/cancel/").status_code == 202


def test_a_missing_job_is_a_json_404(viewer_client: Client) -> None:
    response = viewer_client.get("/api/v1/jobs/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_openapi_schema_generates_without_warnings(viewer_client: Client, capsys: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("spectacular", "--fail-on-warn", "--validate", stdout=out, stderr=err)
    assert "/api/v1/jobs/" in out.getvalue()
    response = viewer_client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"bearerAuth", "basicAuth"} <= set(schema["components"]["securitySchemes"])


def test_the_api_docs_page_serves_swagger_from_local_static_files(viewer_client: Client) -> None:
    html = viewer_client.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
