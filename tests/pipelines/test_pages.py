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
