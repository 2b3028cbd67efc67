"""Runs: start one, walk its DAG, cancel it, re-run it from the failed step.

`advance_run` is the whole scheduler. Under a lock on the run row it reads its steps and, until nothing
changes: takes note of the jobs that ended (a failed job is tried again while the step has retries left),
marks steps whose upstream failed, and for every step whose upstream is done renders its arguments, pins what
it reads, and either reuses an earlier identical step's outputs (cached) or starts its job. Independent steps
run at once, each on its own queue. It runs when a run starts, whenever a job ends (a jobs-registry finish
listener) and on beat (pipelines.tick), so a lost notification only delays a run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.services import record_audit
from jobs.models import FINISHED_STATUSES, Job, JobStatus
from jobs.services import cancel_job
from mlops_portal.api import error_text
from pipelines.models import (
    DONE_STEP,
    FINAL_STEP,
    Pipeline,
    PipelineRun,
    PipelineVersion,
    RunStatus,
    StepRun,
    StepStatus,
    TriggerKind,
)
from pipelines.spec import SpecError, render, topological
from pipelines.steps import STEP_TYPES, StepFailed

logger = logging.getLogger(__name__)


class RunError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def run_params(version: PipelineVersion, params: Any) -> dict[str, Any]:
    """The definition's parameters with the caller's values; an unknown one is a RunError naming it."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RunError("params", "an object of parameter values")
    declared = version.spec.get("params", {})
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise RunError(f"params.{unknown[0]}", f"unknown parameter; {version} takes {', '.join(declared) or 'none'}")
    return {**declared, **params}


def start_run(
    pipeline: Pipeline,
    *,
    params: Any = None,
    trigger: str = TriggerKind.MANUAL,
    details: dict[str, Any] | None = None,
    requested_by: Any = None,
    version: PipelineVersion | None = None,
    rerun_of: PipelineRun | None = None,
) -> PipelineRun:
    """Create a run of `version` (default: the newest) and start the steps that wait for nothing."""
    version = version or pipeline.latest_version()
    if version is None:
        raise RunError("pipeline", f"{pipeline.name!r} has no definition yet")
    values = run_params(version, params)
    user = requested_by if getattr(requested_by, "is_authenticated", False) else None
    with transaction.atomic():
        Pipeline.objects.select_for_update().filter(pk=pipeline.pk).first()  # numbers runs one at a time
        number = (pipeline.runs.aggregate(n=Max("number"))["n"] or 0) + 1
        run = PipelineRun.objects.create(
            pipeline=pipeline, version=version, number=number, params=values, trigger=trigger,
            trigger_details=details or {}, requested_by=user or pipeline.owner, rerun_of=rerun_of,
        )  # fmt: skip
        StepRun.objects.bulk_create(
            StepRun(run=run, name=s["name"], type=s["type"]) for s in _ordered(version.spec["steps"])
        )
        record_audit(requested_by, "pipeline.run", run, {"trigger": trigger, "version": version.number})
        if rerun_of is not None:
            _reuse_done_steps(run, rerun_of)
        advance_run(run.pk)
    return run


def _ordered(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {s["name"]: s for s in steps}
    return [by_name[name] for name in topological(steps)]


def _reuse_done_steps(run: PipelineRun, earlier: PipelineRun) -> None:
    """Re-run from the failed step: what succeeded in the earlier run is taken over as cached."""
    done = {s.name: s for s in earlier.steps.filter(status__in=DONE_STEP)}
    for step in run.steps.all():
        source = done.get(step.name)
        if source is not None:
            StepRun.objects.filter(pk=step.pk).update(
                status=StepStatus.CACHED, outputs=source.outputs, inputs=source.inputs, cache_key=source.cache_key,
                cached_from=source.cached_from or source, started_at=timezone.now(), finished_at=timezone.now(),
            )  # fmt: skip


def rerun_from_failed(run: PipelineRun, *, requested_by: Any) -> PipelineRun:
    if not run.is_finished or run.status == RunStatus.SUCCEEDED:
        raise RunError("run", "only a failed or cancelled run can be re-run from its failed step")
    return start_run(run.pipeline, params=run.params, trigger=TriggerKind.RERUN, details={"rerun_of": run.number},
                     requested_by=requested_by, version=run.version, rerun_of=run)  # fmt: skip


def cancel_run(run: PipelineRun, *, actor: Any) -> PipelineRun:
    """Stop a run: steps not started never start, running steps' jobs are cancelled."""
    with transaction.atomic():
        PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
        record_audit(actor, "pipeline.cancel", run, {})
        advance_run(run.pk, actor=actor)
    run.refresh_from_db()
    return run


def _user(run: PipelineRun) -> Any:
    return run.requested_by or run.pipeline.owner


def _context(run: PipelineRun, steps: dict[str, StepRun]) -> dict[str, Any]:
    return {
        "params": run.params, "event": run.trigger_details.get("event", {}), "run": {"number": run.number},
        "steps": {name: {"outputs": s.outputs} for name, s in steps.items() if s.status in DONE_STEP},
    }  # fmt: skip


def _cache_key(spec: dict[str, Any], args: dict[str, Any]) -> str:
    payload = {"type": spec["type"], "args": args}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _finish_step(step: StepRun, status: str, *, error: str = "", outputs: dict[str, Any] | None = None) -> None:
    step.status, step.error, step.finished_at = status, error[-4000:], timezone.now()
    if outputs is not None:
        step.outputs = outputs
    step.save(update_fields=["status", "error", "finished_at", "outputs"])


def advance_run(run_id: int, *, actor: Any = None) -> str | None:
    """Move a run as far as it can go now. Returns its status, or None when there is no such run."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        if run.is_finished or run.trigger == TriggerKind.EXTERNAL:
            return run.status  # an external orchestrator starts the steps of its runs (pipelines/external.py)
        run = PipelineRun.objects.select_related("version", "pipeline__owner", "requested_by").get(pk=run_id)
        specs = {s["name"]: s for s in run.version.spec["steps"]}
        steps = {s.name: s for s in run.steps.select_related("job")}
        if run.cancel_requested:
            _cancel_steps(steps, actor)
        changed = True
        while changed:
            changed = _collect(run, specs, steps) | _start_ready(run, specs, steps)
        if all(s.status in FINAL_STEP for s in steps.values()):
            statuses = {s.status for s in steps.values()}
            final = (
                RunStatus.CANCELLED
                if run.cancel_requested or StepStatus.CANCELLED in statuses
                else RunStatus.FAILED
                if statuses & {StepStatus.FAILED, StepStatus.UPSTREAM_FAILED}
                else RunStatus.SUCCEEDED
            )
            PipelineRun.objects.filter(pk=run.pk).update(status=final, finished_at=timezone.now())
            return str(final)
        return str(RunStatus.RUNNING)


def _cancel_steps(steps: dict[str, StepRun], actor: Any) -> None:
    for step in steps.values():
        if step.status == StepStatus.PENDING:
            _finish_step(step, StepStatus.CANCELLED, error="the run was cancelled")
        elif step.status == StepStatus.RUNNING:
            if step.job is not None and not step.job.is_finished:
                cancel_job(step.job, actor=actor)
            _finish_step(step, StepStatus.CANCELLED, error="the run was cancelled")


def _collect(run: PipelineRun, specs: dict[str, Any], steps: dict[str, StepRun]) -> bool:
    """Take note of running steps whose job ended."""
    changed = False
    for step in steps.values():
        if step.status != StepStatus.RUNNING or step.job is None or step.job.status not in FINISHED_STATUSES:
            continue
        changed = True
        job, spec = step.job, specs[step.name]
        if job.status == JobStatus.SUCCEEDED:
            try:
                outputs = STEP_TYPES[step.type].outputs(job)
            except StepFailed as exc:
                _finish_step(step, StepStatus.FAILED, error=str(exc))
            else:
                _finish_step(step, StepStatus.SUCCEEDED, outputs=outputs)
        elif job.status == JobStatus.FAILED and step.attempts <= spec["retries"] and not run.cancel_requested:
            _start(run, spec, step, step.inputs)  # another try with the same inputs
        else:
            reason = job.error.strip().splitlines()[-1] if job.error.strip() else job.status
            status = StepStatus.CANCELLED if job.status == JobStatus.CANCELLED else StepStatus.FAILED
            _finish_step(step, status, error=f"{reason} (attempt {step.attempts} of {spec['retries'] + 1})")
    return changed


def _start_ready(run: PipelineRun, specs: dict[str, Any], steps: dict[str, StepRun]) -> bool:
    changed = False
    if run.cancel_requested:
        return changed
    for name, step in steps.items():
        if step.status != StepStatus.PENDING:
            continue
        spec = specs[name]
        needs = [steps[n] for n in spec["needs"]]
        if any(n.status in (StepStatus.FAILED, StepStatus.UPSTREAM_FAILED, StepStatus.CANCELLED) for n in needs):
            failed = ", ".join(n.name for n in needs if n.status not in DONE_STEP)
            _finish_step(step, StepStatus.UPSTREAM_FAILED, error=f"upstream failed: {failed}")
            changed = True
            continue
        if not all(n.status in DONE_STEP for n in needs):
            continue
        changed = True
        step_type = STEP_TYPES[step.type]
        try:
            args = step_type.clean(render(spec["args"], _context(run, steps)))
            args = step_type.resolve(args, run)
        except Exception as exc:  # a bad value or an unreadable input fails this step, not the scheduler
            step.started_at = timezone.now()
            step.save(update_fields=["started_at"])
            _finish_step(step, StepStatus.FAILED, error=str(exc) if isinstance(exc, SpecError | StepFailed)
                         else _reason(exc))  # fmt: skip
            continue
        step.inputs = json.loads(json.dumps(args, default=str))
        step.cache_key = _cache_key(spec, step.inputs)
        earlier = _cached(run, spec, step)
        if earlier is not None:
            step.status, step.outputs, step.cached_from = StepStatus.CACHED, earlier.outputs, earlier
            step.started_at = step.finished_at = timezone.now()
            step.save(update_fields=["status", "outputs", "cached_from", "started_at", "finished_at", "inputs",
                                     "cache_key"])  # fmt: skip
            continue
        _start(run, spec, step, step.inputs)
    return changed


def _cached(run: PipelineRun, spec: dict[str, Any], step: StepRun) -> StepRun | None:
    """An earlier succeeded step of this pipeline with the same definition and inputs, when caching is on."""
    if not spec["cache"]:
        return None
    return (
        StepRun.objects.filter(run__pipeline_id=run.pipeline_id, cache_key=step.cache_key, status=StepStatus.SUCCEEDED)
        .exclude(run_id=run.pk)
        .order_by("-finished_at")
        .first()
    )


def _start(run: PipelineRun, spec: dict[str, Any], step: StepRun, args: dict[str, Any]) -> None:
    step.attempts += 1
    step.started_at = step.started_at or timezone.now()
    step.status = StepStatus.RUNNING
    step.error = ""
    try:
        with transaction.atomic():
            job = STEP_TYPES[step.type].start(step, args, _user(run))
            if spec["timeout_seconds"]:  # every step type's job, whoever made it (sent only after commit)
                Job.objects.filter(pk=job.pk).update(timeout_seconds=spec["timeout_seconds"])
    except StepFailed as exc:
        step.save(update_fields=["attempts", "started_at", "inputs", "cache_key"])
        _finish_step(step, StepStatus.FAILED, error=str(exc))
        return
    except Exception as exc:  # a service refused (a ValidationError naming a field): the step fails, says why
        step.save(update_fields=["attempts", "started_at", "inputs", "cache_key"])
        _finish_step(step, StepStatus.FAILED, error=_reason(exc))
        return
    step.job = job
    step.save(update_fields=["attempts", "started_at", "status", "error", "job", "inputs", "cache_key"])


def _reason(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return error_text(detail) if detail is not None else str(exc) or type(exc).__name__


def on_job_finished(job_id: int) -> None:
    """The jobs registry's finish listener: a step's job ended, so its run may move on."""
    run_id = StepRun.objects.filter(job_id=job_id).values_list("run_id", flat=True).first()
    if run_id is not None:
        advance_run(run_id)


def advance_running() -> int:
    """On beat: every running run moves on (repairs a lost notification). Returns how many were looked at."""
    running = PipelineRun.objects.filter(status=RunStatus.RUNNING).exclude(trigger=TriggerKind.EXTERNAL)
    ids = list(running.order_by("created_at").values_list("pk", flat=True)[:500])
    for run_id in ids:
        try:
            advance_run(run_id)
        except Exception:
            logger.exception("advancing a pipeline run failed", extra={"run_id": run_id})
    return len(ids)


def run_inline_step(ctx: Any) -> dict[str, Any]:
    """The `pipelines.step` job: run a small step's work in a worker."""
    from jobs.models import JobStatus as Status
    from jobs.runner import JobStopped

    step = StepRun.objects.select_related("run__version", "run__pipeline__owner", "run__requested_by")
    step = step.filter(pk=ctx.params["step_run_id"]).first()
    if step is None:
        return {"skipped": "the pipeline run was deleted"}
    try:
        return STEP_TYPES[step.type].run(ctx, step, step.inputs, _user(step.run))
    except StepFailed as exc:
        raise JobStopped(Status.FAILED, str(exc)) from None
