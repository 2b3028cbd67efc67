"""Steps run by another orchestrator (Kubeflow Pipelines, Airflow), one process per step.

An exported pipeline (pipelines/exports.py) runs each step as `python manage.py run_step PIPELINE STEP
--run-key KEY` on the portal's code, against the same database and artifact store. All the steps of one
orchestrator run share one portal run (found by its key), so the portal's pages show it like any other; each
step's upstream outputs are read from that run, so nothing passes through the orchestrator but the order.
The portal's engine never starts steps of such a run: the orchestrator does.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import runner
from jobs.models import Job, JobStatus
from pipelines import engine
from pipelines.models import DONE_STEP, Pipeline, PipelineRun, RunStatus, StepRun, StepStatus, TriggerKind
from pipelines.spec import SpecError, render
from pipelines.steps import STEP_TYPES, StepFailed


class ExternalStepError(RuntimeError):
    pass


def external_run(
    pipeline: Pipeline, key: str, *, orchestrator: str, params: Any, user: Any, version: int | None = None
) -> PipelineRun:
    """The portal run of the orchestrator's run `key`, of the exported `version` (default: the newest),
    created by whichever step gets here first."""
    with transaction.atomic():
        Pipeline.objects.select_for_update().filter(pk=pipeline.pk).first()
        run = pipeline.runs.filter(trigger=TriggerKind.EXTERNAL, trigger_details__key=key).first()
        if run is not None:
            return run
        found = pipeline.versions.filter(number=version).first() if version else pipeline.latest_version()
        if found is None:
            raise ExternalStepError(f"{pipeline.name!r} has no version {version}" if version else "no definition")
        try:  # the engine's own run (numbering, step rows, audit); it starts no step of an external run
            return engine.start_run(pipeline, params=params, trigger=TriggerKind.EXTERNAL, requested_by=user,
                                    details={"key": key, "orchestrator": orchestrator}, version=found)  # fmt: skip
        except engine.RunError as exc:
            raise ExternalStepError(f"{exc.field}: {exc.message}") from None


def run_step(run: PipelineRun, name: str) -> dict[str, Any]:
    """Do one step of an external run here and now (its job executed in this process); returns its outputs."""
    spec = next((s for s in run.version.spec["steps"] if s["name"] == name), None)
    if spec is None:
        raise ExternalStepError(f"{run.version} has no step {name!r}")
    steps = {s.name: s for s in run.steps.select_related("job")}
    step = steps[name]
    if step.status in DONE_STEP:
        return step.outputs  # the orchestrator retried a step that had finished
    missing = [n for n in spec["needs"] if steps[n].status not in DONE_STEP]
    if missing:
        raise ExternalStepError(f"{name!r} needs {', '.join(missing)}, which did not succeed in this run")
    step_type = STEP_TYPES[step.type]
    context = engine._context(run, steps)
    step.started_at, step.status, step.attempts = timezone.now(), StepStatus.RUNNING, step.attempts + 1
    try:
        args = step_type.resolve(step_type.clean(render(spec["args"], context)), run)
        step.inputs = args
        step.save(update_fields=["started_at", "status", "attempts", "inputs"])
        job = step_type.start(step, args, run.requested_by or run.pipeline.owner)
        StepRun.objects.filter(pk=step.pk).update(job=job)
        if runner.execute(job.pk, worker=str(run.trigger_details.get("orchestrator", "external"))) == "skipped":
            _wait_for(job.pk)  # a Celery worker of the portal claimed it first: it runs there
        job = Job.objects.get(pk=job.pk)
        if job.status != JobStatus.SUCCEEDED:
            raise StepFailed(job.error.strip().splitlines()[-1] if job.error.strip() else job.status)
        outputs = step_type.outputs(job)
    except Exception as exc:  # whatever it was, the step ends FAILED: nothing repairs an external run later
        reason = str(exc) if isinstance(exc, SpecError | StepFailed) else engine._reason(exc)
        _finish(step, StepStatus.FAILED, error=reason)
        raise ExternalStepError(reason) from None
    _finish(step, StepStatus.SUCCEEDED, outputs=outputs)
    return outputs


def _wait_for(job_id: int) -> None:
    import time

    while not Job.objects.get(pk=job_id).is_finished:
        time.sleep(1)


def _finish(step: StepRun, status: str, *, error: str = "", outputs: dict[str, Any] | None = None) -> None:
    StepRun.objects.filter(pk=step.pk).update(status=status, error=error[-4000:], outputs=outputs or {},
                                              finished_at=timezone.now())  # fmt: skip
    run = step.run
    states = list(run.steps.values_list("status", flat=True))
    if status == StepStatus.FAILED:
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=timezone.now())
    elif all(s in DONE_STEP for s in states):
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
