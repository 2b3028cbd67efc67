"""The pipelines pages: empty state, defining one, its DAG with the last run's states, a run's Gantt and logs."""

from __future__ import annotations

import json
from typing import Any

from pipelines.models import Pipeline, PipelineRun
from tests.pipelines.test_api import YAML


def test_from_the_empty_list_to_a_finished_run_in_the_browser_pages(
    editor: Any, editor_client: Any, viewer_client: Any, sent: list[int], drive: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    empty = editor_client.get("/pipelines/").content.decode()
    assert "No pipelines yet" in empty and 'href="/pipelines/new/"' in empty
    form = editor_client.get("/pipelines/new/").content.decode()
    assert 'id="define-form"' in form and "type: train" in form  # an example to start from
    bad = editor_client.post("/pipelines/new/", {"name": "loop", "definition": "steps: [{name: a, type: nope}]"},
                             follow=True)  # fmt: skip
    assert "steps[0].type: one of" in bad.content.decode() and not Pipeline.objects.exists()
    assert viewer_client.post("/pipelines/new/", {"name": "loop", "definition": YAML}).status_code == 403
    saved = editor_client.post("/pipelines/new/", {"name": "loop", "definition": YAML})
    assert saved.status_code == 302 and saved["Location"] == "/pipelines/loop/"
    page = editor_client.get("/pipelines/loop/").content.decode()
    assert 'id="dag-chart" data-figure="' in page and "Never run" in page and 'id="run-form"' in page
    with django_capture_on_commit_callbacks(execute=True):
        started = editor_client.post("/pipelines/loop/run/", {"params": '{"label": "page"}'})
    assert started.status_code == 302 and started["Location"] == "/pipelines/loop/runs/1/"
    live = editor_client.get("/pipelines/loop/runs/1/").content.decode()
    assert 'data-refresh="2"' in live and 'id="cancel-run"' in live
    drive()
    done = editor_client.get("/pipelines/loop/runs/1/")
    html = done.content.decode()
    assert 'id="gantt-chart"' in html and "data-refresh" not in html and "Succeeded" in html
    gantt = json.loads(done.context["gantt"])
    assert gantt["data"][0]["y"] == ["a", "b"] and gantt["layout"]["xaxis"]["type"] == "date"
    detail = editor_client.get("/pipelines/loop/")
    dag = json.loads(detail.context["figure"])
    assert dag["data"][0]["text"] == ["a", "b"] and dag["data"][0]["marker"]["color"] == ["#16a34a", "#16a34a"]
    assert len(dag["layout"]["annotations"]) == 1  # one arrow, a → b
    listing = editor_client.get("/pipelines/").content.decode()
    assert 'href="/pipelines/loop/runs/1/"' in listing and "Succeeded" in listing
    bad_params = editor_client.post("/pipelines/loop/run/", {"params": '{"nope": 1}'}, follow=True)
    assert "params.nope: unknown parameter" in bad_params.content.decode() and PipelineRun.objects.count() == 1


def test_the_owner_schedules_pauses_resumes_and_deletes_from_the_page(
    editor: Any, editor_client: Any, django_user_model: Any
) -> None:
    from django.test import Client

    from pipelines import services
    from tests.conftest import make_user

    echo = {"name": "a", "type": "function", "args": {"function": "pipelines.functions.echo"}}
    services.save_definition("loop", {"steps": [echo]}, actor=editor)
    pipeline = Pipeline.objects.get()
    services.create_trigger(pipeline, "dataset", "iris", actor=editor)
    url = "/pipelines/loop/automation/"
    bad = editor_client.post(url, {"action": "schedule", "cron": "sometimes"}, follow=True)
    assert (
        "five cron fields (minute hour day month weekday)" in bad.content.decode() and not pipeline.schedules.exists()
    )
    editor_client.post(url, {"action": "schedule", "cron": "@hourly"})
    schedule = pipeline.schedules.get()
    page = editor_client.get("/pipelines/loop/").content.decode()
    assert 'id="schedule-form"' in page and "<code>@hourly</code>" in page and 'value="pause"' in page
    editor_client.post(url, {"action": "pause", "schedule": schedule.pk})
    schedule.refresh_from_db()
    assert schedule.paused
    editor_client.post(url, {"action": "resume", "schedule": schedule.pk})
    schedule.refresh_from_db()
    assert not schedule.paused
    other = Client()
    other.force_login(make_user(django_user_model, "eve", "editor"))
    assert 'id="schedule-form"' not in other.get("/pipelines/loop/").content.decode()
    other.post(url, {"action": "delete-schedule", "schedule": schedule.pk})
    assert pipeline.schedules.exists()  # not theirs to delete
    editor_client.post(url, {"action": "delete-schedule", "schedule": schedule.pk})
    editor_client.post(url, {"action": "delete-trigger", "trigger": pipeline.triggers.get().pk})
    assert not pipeline.schedules.exists() and not pipeline.triggers.exists()
