"""The pipelines API as owner, another editor and a viewer; the webhook with its own token."""

from __future__ import annotations

from typing import Any

from django.test import Client

from pipelines.models import Pipeline, PipelineRun
from tests.conftest import bearer, make_user

YAML = """
params: {label: x}
steps:
  - name: a
    type: function
    args: {function: tests.pipelines.functions.record, kwargs: {label: "{{ params.label }}"}}
  - name: b
    type: function
    needs: [a]
    args: {function: pipelines.functions.echo, kwargs: {count: "{{ steps.a.outputs.count }}"}}
"""


def post(client: Client, path: str, body: Any = None, **extra: Any) -> Any:
    return client.post(path, body or {}, content_type="application/json", **extra)


def test_define_run_read_cancel_and_rerun_over_the_api(
    editor: Any, viewer: Any, django_user_model: Any, sent: list[int], drive: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    owner, other = Client(**bearer(editor)), Client(**bearer(make_user(django_user_model, "eve", "editor")))
    created = post(owner, "/api/v1/pipelines/", {"name": "loop", "definition": YAML})
    assert created.status_code == 201 and created.json()["version"] == 1 and created.json()["created_version"]
    assert post(owner, "/api/v1/pipelines/", {"name": "loop", "definition": YAML}).status_code == 200  # unchanged
    bad = post(owner, "/api/v1/pipelines/", {"name": "loop", "definition": {"steps": [{"name": "a", "type": "x"}]}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "steps[0].type"
    assert post(other, "/api/v1/pipelines/", {"name": "loop", "definition": YAML + "\n"}).status_code == 403
    assert post(Client(**bearer(viewer)), "/api/v1/pipelines/loop/runs/", {}).status_code == 403

    typo = post(other, "/api/v1/pipelines/loop/runs/", {"params": {"lable": "y"}})
    assert typo.status_code == 400 and typo.json()["error"]["field"] == "params.lable"
    with django_capture_on_commit_callbacks(execute=True):
        started = post(other, "/api/v1/pipelines/loop/runs/", {"params": {"label": "y"}})  # editors may run it
    assert started.status_code == 202 and started.json()["number"] == 1
    drive()
    run = owner.get("/api/v1/pipelines/loop/runs/1/").json()
    assert run["status"] == "succeeded" and [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"]
    assert run["steps"][1]["outputs"] == {"count": 1}
    assert owner.get("/api/v1/pipelines/loop/runs/").json()["results"][0]["number"] == 1
    assert owner.get("/api/v1/pipelines/loop/").json()["definition"]["params"] == {"label": "x"}
    assert owner.get("/api/v1/pipelines/loop/versions/1/").status_code == 200
    assert owner.get("/api/v1/pipelines/nope/").status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        post(owner, "/api/v1/pipelines/loop/runs/", {"params": {"label": "z"}})
    assert post(Client(**bearer(make_user(django_user_model, "zed", "editor"))),
                "/api/v1/pipelines/loop/runs/2/cancel/").status_code == 403  # fmt: skip
    cancelled = post(owner, "/api/v1/pipelines/loop/runs/2/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    with django_capture_on_commit_callbacks(execute=True):
        rerun = post(owner, "/api/v1/pipelines/loop/runs/2/rerun/")
    assert rerun.status_code == 202 and rerun.json()["trigger"] == "rerun" and rerun.json()["rerun_of"] == 2
    assert post(owner, "/api/v1/pipelines/loop/runs/1/rerun/").status_code == 400  # it succeeded


def test_schedules_and_triggers_are_the_owners_and_name_bad_fields(editor: Any, django_user_model: Any) -> None:
    owner, other = Client(**bearer(editor)), Client(**bearer(make_user(django_user_model, "eve", "editor")))
    post(owner, "/api/v1/pipelines/", {"name": "loop", "definition": YAML})
    for body, field in [({"cron": "every day"}, "cron"), ({"cron": "@daily", "params": {"nope": 1}}, "params.nope")]:
        response = post(owner, "/api/v1/pipelines/loop/schedules/", body)
        assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert post(other, "/api/v1/pipelines/loop/schedules/", {"cron": "@daily"}).status_code == 403
    made = post(owner, "/api/v1/pipelines/loop/schedules/", {"cron": "@daily"})
    assert made.status_code == 201 and made.json()["schedules"][0]["cron"] == "@daily"
    schedule_id = made.json()["schedules"][0]["id"]
    paused = owner.patch(f"/api/v1/pipelines/loop/schedules/{schedule_id}/", {"paused": True},
                         content_type="application/json")  # fmt: skip
    assert paused.json()["schedules"][0]["paused"] is True
    body = {"kind": "dataset", "source": "churn", "params": {"label": "{{ event.version }}"}}
    trigger = post(owner, "/api/v1/pipelines/loop/triggers/", body)
    assert trigger.status_code == 201 and trigger.json()["triggers"][0]["source"] == "churn"
    bad = post(owner, "/api/v1/pipelines/loop/triggers/", {"kind": "weather", "source": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "kind"
    assert owner.delete(f"/api/v1/pipelines/loop/schedules/{schedule_id}/").status_code == 204


def test_the_webhook_starts_a_run_only_with_the_pipelines_token(
    editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    owner = Client(**bearer(editor))
    post(owner, "/api/v1/pipelines/", {"name": "loop", "definition": YAML})
    anonymous = Client()
    assert post(anonymous, "/api/v1/pipelines/loop/webhook/").status_code == 401  # no token made yet
    token = post(owner, "/api/v1/pipelines/loop/webhook-token/").json()["token"]
    assert post(anonymous, "/api/v1/pipelines/loop/webhook/", HTTP_X_PIPELINE_TOKEN="plw_wrong").status_code == 401
    assert post(anonymous, "/api/v1/pipelines/other/webhook/", HTTP_X_PIPELINE_TOKEN=token).status_code == 401
    assert anonymous.get("/api/v1/pipelines/loop/webhook/", HTTP_X_PIPELINE_TOKEN=token).status_code == 405
    bad = post(anonymous, "/api/v1/pipelines/loop/webhook/", {"params": {"zzz": 1}}, HTTP_X_PIPELINE_TOKEN=token)
    assert bad.status_code == 400 and not PipelineRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ok = post(
            anonymous, "/api/v1/pipelines/loop/webhook/", {"params": {"label": "hook"}}, HTTP_X_PIPELINE_TOKEN=token
        )
    assert ok.status_code == 202 and ok.json()["trigger"] == "webhook"
    run = PipelineRun.objects.get()
    assert run.requested_by == editor and run.params == {"label": "hook"}
    assert Pipeline.objects.get().webhook_token_digest != token  # only a digest is kept
