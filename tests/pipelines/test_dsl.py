"""The Python DSL: `>>`, outputs that imply order, `@pipeline`; the founding Airflow DAG one to one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command

from pipelines import engine
from pipelines.dsl import evaluate, function, param, pipeline, register, train, validate_dataset
from pipelines.models import Pipeline, RunStatus
from pipelines.spec import validate

ROOT = Path(__file__).resolve().parents[2]


def test_steps_wire_with_shifts_and_with_the_outputs_they_use() -> None:
    @pipeline(name="retrain", schedule="@daily", params={"dataset": "churn"})
    def retrain() -> None:
        """Retrain on the newest data."""
        check = validate_dataset("validate", dataset=param("dataset"), columns=["churned"])
        model = train("train", experiment="e", dataset=param("dataset"), target="churned",
                      trainer="keras_mlp_classifier", retries=2)  # fmt: skip
        gate = evaluate("evaluate", candidate=model.outputs.model, dataset=param("dataset"), target="churned")
        check >> model
        gate >> register("register", model="churn", source=model.outputs["model"])

    spec = retrain.spec()
    assert retrain.schedule == "@daily" and spec["description"] == "Retrain on the newest data."
    needs = {s["name"]: s["needs"] for s in spec["steps"]}
    assert needs == {"validate": [], "train": ["validate"], "evaluate": ["train"], "register": ["evaluate", "train"]}
    assert spec["steps"][2]["args"]["candidate"] == "{{ steps.train.outputs.model }}"
    assert spec["steps"][1]["retries"] == 2
    validate(spec)  # the API would take it as it is

    @pipeline(name="fan")
    def fan() -> None:
        a, b, c, d = (function(n, "pipelines.functions.echo") for n in "abcd")
        a >> [b, c] >> d  # type: ignore[operator]

    assert {s["name"]: s["needs"] for s in fan.spec()["steps"]} == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_the_founding_airflow_dag_applies_schedules_daily_and_runs_its_three_tasks_in_order(
    admin_user: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    call_command("pipeline_apply", str(ROOT / "examples" / "founding_airflow.py"), "--owner", admin_user.username)
    call_command("pipeline_apply", str(ROOT / "examples" / "founding_airflow.py"), "--owner", admin_user.username)
    pipeline_row = Pipeline.objects.get(name="ml_pipeline")
    assert pipeline_row.versions.count() == 1 and pipeline_row.description == "A simple ML pipeline"
    assert list(pipeline_row.schedules.values_list("cron", flat=True)) == ["@daily"]  # once, not twice
    spec = pipeline_row.latest_version().spec
    assert [(s["name"], s["needs"]) for s in spec["steps"]] == [
        ("preprocess", []), ("train", ["preprocess"]), ("deploy", ["train"]),
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(pipeline_row, requested_by=admin_user)
    drive()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    steps = list(run.steps.order_by("started_at"))
    assert [s.name for s in steps] == ["preprocess", "train", "deploy"]
    assert "Data preprocessed" in steps[0].job.log and "Model deployed" in steps[2].job.log
    assert steps[0].finished_at <= steps[1].started_at and steps[1].finished_at <= steps[2].started_at
