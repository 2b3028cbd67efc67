"""What a review found: steps act within their user's permissions, bad values anywhere are named instead of
breaking the scheduler, one broken schedule does not stop the others, exports run the version exported."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from pipelines import engine, services
from pipelines.models import PipelineRun, Schedule, StepStatus
from pipelines.spec import SpecError, parse, validate
from tests.conftest import bearer, make_user

ECHO = {"steps": [{"name": "a", "type": "function", "args": {"function": "pipelines.functions.echo"}}]}


def test_a_deploy_step_needs_edit_on_the_model_like_the_api(
    editor: Any, django_user_model: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:  # fmt: skip
    from deployments import services as deployments
    from registry import services as registry

    settings.TRACKING_DEFAULT_PERMISSION = "READ"
    owner = make_user(django_user_model, "olive", "editor")
    model = registry.create_registered_model("theirs", owner=owner)
    deployments.create_deployment("their-api", model, "1", owner=owner)
    spec = {"steps": [{"name": "ship", "type": "deploy", "args": {"deployment": "their-api", "version": "1"}}]}
    version, _ = services.save_definition("sneaky", spec, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, requested_by=editor)
    step = run.steps.get()
    assert step.status == StepStatus.FAILED and "erin may not deploy 'theirs'" in step.error and step.job is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("steps: [{name: a, type: validate_dataset, args: {dataset: d, columns: [a, {x: 1}]}}]",
         "steps[0].args.columns"),
        ("params: {day: 2024-01-01}\nsteps: [{name: a, type: function, args: {function: pipelines.functions.echo}}]",
         "definition"),
        ("a: &x [1, 2]\nb: *x", "definition"),
        ("x" * (256 * 1024 + 1), "definition"),
    ],
)  # fmt: skip
def test_values_json_cannot_hold_aliases_and_nested_errors_are_named(text: str, where: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate(parse(text))
    assert caught.value.where == where, caught.value


def test_a_sweep_with_a_bad_value_inside_a_list_is_a_400_naming_it(editor: Any) -> None:
    from experiments import services as tracking
    from tests.datasets.factories import push
    from tests.experiments.test_training import churn_csv

    push("churn", churn_csv(), filename="churn.csv", author=editor)
    tracking.create_experiment("lists", owner=editor)
    body = {"experiment": "lists", "dataset": "churn", "version": 1, "target": "churned",
            "trainer": "keras_mlp_classifier", "space": {"hidden_units": [[16, "x"]]}}  # fmt: skip
    response = Client(**bearer(editor)).post("/api/v1/sweeps/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "space.hidden_units"


def test_one_failing_schedule_does_not_stop_the_others(
    editor: Any, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = services.save_definition("good", ECHO, actor=editor)[0].pipeline
    bad = services.save_definition("bad", ECHO, actor=editor)[0].pipeline
    for pipeline in (bad, good):
        schedule = services.create_schedule(pipeline, "@hourly", actor=editor)
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    real = engine.start_run

    def broken(pipeline: Any, **kwargs: Any) -> Any:
        if pipeline.name == "bad":
            raise RuntimeError("a bug")
        return real(pipeline, **kwargs)

    monkeypatch.setattr(engine, "start_run", broken)
    started = services.run_due_schedules()
    assert [PipelineRun.objects.get(pk=pk).pipeline.name for pk in started] == ["good"]
    assert Schedule.objects.get(pipeline=bad).next_run_at > timezone.now()  # tried again later, not every tick


def test_an_export_runs_the_version_it_was_made_from(editor: Any, sent: list[int]) -> None:
    services.save_definition("versions", ECHO, actor=editor)
    second = {"steps": [{"name": "b", "type": "function", "args": {"function": "pipelines.functions.echo"}}]}
    services.save_definition("versions", second, actor=editor)
    call_command("run_step", "versions", "a", "--run-key", "k", "--pipeline-version", "1")
    assert PipelineRun.objects.get().version.number == 1
    with pytest.raises(CommandError, match="no step 'a'"):
        call_command("run_step", "versions", "a", "--run-key", "k2")  # the newest has no step a
    client = Client(**bearer(editor))
    assert "--pipeline-version 1" in client.get("/api/v1/pipelines/versions/export/airflow/?version=1").content.decode()
    assert client.get("/api/v1/pipelines/versions/export/airflow/?version=abc").status_code == 400


def test_a_step_that_breaks_unexpectedly_in_an_external_run_ends_failed(
    editor: Any, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import steps

    services.save_definition("breaks", ECHO, actor=editor)
    monkeypatch.setattr(steps.Function, "start", lambda *args: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(CommandError, match="disk full"):
        call_command("run_step", "breaks", "a", "--run-key", "k")
    run = PipelineRun.objects.get()
    assert run.steps.get().status == StepStatus.FAILED and run.status == "failed"


def test_the_pipeline_list_costs_the_same_queries_for_many_pipelines(
    editor: Any, editor_client: Any, django_assert_max_num_queries: Any
) -> None:
    for n in range(8):
        services.save_definition(f"p{n}", ECHO, actor=editor)
    with django_assert_max_num_queries(8):
        assert editor_client.get("/pipelines/").status_code == 200
    with django_assert_max_num_queries(8):
        assert len(Client(**bearer(editor)).get("/api/v1/pipelines/").json()["results"]) == 8
