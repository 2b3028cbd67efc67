"""Runs follow the DAG: independent steps at once, outputs passed on by templates, retries, failures that
stop what depends on them, cancel, re-run from the failed step, and cached steps. Jobs run in process
(`drive`); tests/e2e/test_closed_loop.py runs a pipeline on real workers."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Job, JobStatus
from pipelines import engine, services
from pipelines.models import PipelineRun, RunStatus, StepStatus
from tests.pipelines import functions


def fn(name: str, function: str = "tests.pipelines.functions.record", needs: list[str] | None = None,
       **extra: Any) -> dict[str, Any]:  # fmt: skip
    kwargs = extra.pop("kwargs", {"step": name})
    return {"name": name, "type": "function", "needs": needs or [],
            "args": {"function": function, "kwargs": kwargs}, **extra}  # fmt: skip


DIAMOND = {
    "params": {"label": "x"},
    "steps": [
        fn("a", kwargs={"step": "a", "label": "{{ params.label }}"}),
        fn("b", needs=["a"], kwargs={"step": "b", "from_a": "{{ steps.a.outputs.count }}"}),
        fn("c", needs=["a"]),
        fn(
            "d",
            needs=["b", "c"],
            kwargs={"step": "d", "b_saw": "{{ steps.b.outputs.seen }}", "run": "{{ run.number }}"},
        ),
    ],
}


def states(run: PipelineRun) -> dict[str, str]:
    return dict(run.steps.values_list("name", "status"))


def test_a_run_follows_the_dag_and_passes_outputs_on(editor: Any, sent: list[int], drive: Any,
                                                     django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    version, created = services.save_definition("diamond", DIAMOND, actor=editor)
    assert created and version.number == 1
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, params={"label": "y"}, requested_by=editor)
    assert states(run) == {"a": "running", "b": "pending", "c": "pending", "d": "pending"} and len(sent) == 1
    drive(limit=1)
    assert states(run) == {"a": "succeeded", "b": "running", "c": "running", "d": "pending"}  # b and c at once
    assert len(sent) == 2
    drive()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.finished_at is not None, {s.name: s.error for s in run.steps.all()}
    assert functions.CALLS[0] == {"step": "a", "label": "y"}
    assert {"step": "b", "from_a": 1} in functions.CALLS  # a whole template keeps the value's type
    d = run.steps.get(name="d")
    assert d.inputs["kwargs"] == {"step": "d", "b_saw": {"step": "b", "from_a": 1}, "run": run.number}
    assert d.job.type == "pipelines.step" and d.attempts == 1 and d.started_at <= d.finished_at


def test_a_failing_step_is_retried_then_stops_what_depends_on_it_and_reruns_from_there(
    editor: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"steps": [fn("prepare"), fn("load", "tests.pipelines.functions.boom", needs=["prepare"], retries=1),
                      fn("train", needs=["load"]), fn("side")]}  # fmt: skip
    version, _ = services.save_definition("flaky", spec, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, requested_by=editor)
    drive()
    run.refresh_from_db()
    load = run.steps.get(name="load")
    assert run.status == RunStatus.FAILED
    assert states(run) == {"prepare": "succeeded", "load": "failed", "train": "upstream_failed", "side": "succeeded"}
    assert load.attempts == 2 and "the data is not ready" in load.error and "(attempt 2 of 2)" in load.error
    assert Job.objects.filter(type="pipelines.step", status=JobStatus.FAILED).count() == 2
    assert run.steps.get(name="train").error == "upstream failed: load"

    monkeypatch.setattr(functions, "boom", functions.record)  # the fix: the data is ready now
    calls = len(functions.CALLS)
    with django_capture_on_commit_callbacks(execute=True):
        again = engine.rerun_from_failed(run, requested_by=editor)
    # The re-run keeps the version and parameters it re-runs, takes over what succeeded, runs the rest.
    assert again.version_id == run.version_id and again.trigger == "rerun"
    assert again.steps.get(name="prepare").cached_from == run.steps.get(name="prepare")
    drive()
    again.refresh_from_db()
    assert again.status == RunStatus.SUCCEEDED
    assert states(again) == {"prepare": "cached", "load": "succeeded", "train": "succeeded", "side": "cached"}
    assert len(functions.CALLS) == calls + 2  # load and train ran; prepare and side did not run again
    with pytest.raises(engine.RunError):
        engine.rerun_from_failed(PipelineRun.objects.create(pipeline=run.pipeline, version=run.version, number=99),
                                 requested_by=editor)  # fmt: skip


def test_an_unchanged_step_with_unchanged_inputs_is_cached(
    editor: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    version, _ = services.save_definition("cache", DIAMOND, actor=editor)
    for label in ("one", "one", "two"):
        with django_capture_on_commit_callbacks(execute=True):
            engine.start_run(version.pipeline, params={"label": label}, requested_by=editor)
        drive()
    first, second, third = PipelineRun.objects.order_by("number")
    assert all(s == "succeeded" for s in states(first).values())
    # d's inputs hold the run's number, so it runs every time; the rest is cached when the label repeats.
    assert states(second) == {"a": "cached", "b": "cached", "c": "cached", "d": "succeeded"}
    assert second.steps.get(name="a").job is None and second.status == RunStatus.SUCCEEDED
    assert states(third)["a"] == "succeeded" and states(third)["c"] == "cached"  # c's inputs did not change
    nocache = {"steps": [fn("a", cache=False)]}
    version, _ = services.save_definition("nocache", nocache, actor=editor)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            run = engine.start_run(version.pipeline, requested_by=editor)
        drive()
    assert states(run) == {"a": "succeeded"}


def test_a_cancelled_run_starts_nothing_more_and_cancels_its_running_jobs(
    editor: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    version, _ = services.save_definition("cancel", DIAMOND, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, params={"label": "z"}, requested_by=editor)
    job = run.steps.get(name="a").job
    engine.cancel_run(run, actor=editor)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(states(run).values()) == {StepStatus.CANCELLED}
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED  # it had not started: cancelled at once
    assert engine.advance_run(run.pk) == RunStatus.CANCELLED


def test_unknown_params_and_missing_definitions_are_refused_naming_them(editor: Any) -> None:
    version, _ = services.save_definition("params", DIAMOND, actor=editor)
    with pytest.raises(engine.RunError) as caught:
        engine.start_run(version.pipeline, params={"labl": "typo"}, requested_by=editor)
    assert caught.value.field == "params.labl" and not PipelineRun.objects.exists()
    same, created = services.save_definition("params", DIAMOND, actor=editor)
    assert not created and same == version  # saving the same definition adds no version


def test_a_step_whose_template_has_no_value_fails_saying_which(
    editor: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    spec = {"steps": [fn("a"), fn("b", needs=["a"], kwargs={"x": "{{ steps.a.outputs.nothing }}"})]}
    version, _ = services.save_definition("missing", spec, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, requested_by=editor)
    drive()
    b = run.steps.get(name="b")
    assert b.status == StepStatus.FAILED and "{{ steps.a.outputs.nothing }} has no value" in b.error


def test_a_steps_timeout_bounds_its_job_whatever_the_step_type(
    editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    spec = {"steps": [fn("a", timeout_seconds=30), {"name": "p", "type": "profile_dataset", "timeout_seconds": 45,
                                                     "args": {"dataset": "iris"}}]}  # fmt: skip
    from tests.datasets.factories import push

    push("iris", author=editor)
    version, _ = services.save_definition("timeouts", spec, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        run = engine.start_run(version.pipeline, requested_by=editor)
    assert {s.name: s.job.timeout_seconds for s in run.steps.select_related("job")} == {"a": 30, "p": 45}
