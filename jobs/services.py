"""The write path for jobs: submit, dispatch, claim, report, finish, cancel and reconcile."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.services import record_audit
from jobs import registry
from jobs.models import LOG_TAIL_CHARS, Job, JobStatus

logger = logging.getLogger(__name__)


class UnknownJobType(ValueError):
    pass


def submit_job(
    job_type: str,
    *,
    params: dict[str, Any] | None = None,
    requested_by: Any = None,
    max_attempts: int | None = None,
    timeout_seconds: int | None = None,
) -> Job:
    """Create the job row and send it to its queue once the transaction commits."""
    spec = registry.get(job_type)
    if spec is None:
        raise UnknownJobType(job_type)
    with transaction.atomic():
        job = Job.objects.create(
            type=job_type,
            queue=spec.queue,
            params=params or {},
            requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
            max_attempts=max_attempts or settings.JOB_MAX_ATTEMPTS,
            timeout_seconds=timeout_seconds,
        )
        record_audit(requested_by, "job.submit", job, {"type": job_type})
        transaction.on_commit(lambda: dispatch_job(job.pk))
    return job


def dispatch_job(job_id: int) -> bool:
    """Send the job's message. A broker outage is not an error: the reconciler sends it again later."""
    from jobs.tasks import run_job

    job = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).only("pk", "queue").first()
    if job is None:
        return False
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now(), dispatch_count=F("dispatch_count") + 1)
    try:
        run_job.apply_async(args=[job_id], queue=job.queue, retry=False)
    except OperationalError:
        logger.warning("broker unreachable; job will be re-dispatched by the reconciler", extra={"job_id": job_id})
        return False
    return True


def claim_job(job_id: int, worker: str) -> Job | None:
    """Move a job to RUNNING for this worker, or return None if someone else has it.

    A single conditional UPDATE decides, so duplicated messages (a re-dispatch racing a slow queue,
    a redelivery after a worker died) run the job once. A RUNNING job whose heartbeat went stale may
    be taken over directly: its worker is gone.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    claimable = Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
    updated = Job.objects.filter(claimable, pk=job_id, attempts__lt=F("max_attempts"), cancel_requested=False).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        worker=worker[:200],
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        error="",
    )
    if not updated:
        return None
    return Job.objects.get(pk=job_id)


def owns(job: Job) -> Q:
    """The condition under which this worker still owns the job (nobody re-queued or took it)."""
    return Q(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)


def heartbeat(job: Job) -> tuple[bool, bool]:
    """Refresh the heartbeat. Returns (still owned, cancel requested)."""
    updated = Job.objects.filter(owns(job)).update(heartbeat_at=timezone.now())
    cancel = Job.objects.filter(pk=job.pk, cancel_requested=True).exists() if updated else False
    return bool(updated), cancel


def report_progress(job: Job, progress: float, message: str = "") -> bool:
    pct = max(0, min(100, int(progress)))
    return bool(
        Job.objects.filter(owns(job)).update(progress=pct, progress_message=message[:200], heartbeat_at=timezone.now())
    )


def append_log(job: Job, text: str) -> None:
    """Append to the log tail (kept to LOG_TAIL_CHARS) of the job this worker owns."""
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(owns(job)).only("log").first()
        if row is None:
            return
        log = (row.log + text.rstrip("\n") + "\n")[-LOG_TAIL_CHARS:]
        Job.objects.filter(pk=job.pk).update(log=log)


def _end(rows: Any, job_id: int, **values: Any) -> bool:
    """Move the job (`rows`: its row under the caller's conditions) to a final status; when that happened, tell
    its type's `on_finish` hook and the finish listeners once it is committed. Every way a job ends goes here,
    so sweeps and pipelines hear of each."""
    if not rows.update(**values):
        return False
    transaction.on_commit(lambda: _notify_finished(job_id))
    return True


def _notify_finished(job_id: int) -> None:
    job_type = Job.objects.filter(pk=job_id).values_list("type", flat=True).first()
    spec = registry.get(job_type or "")
    hooks = [spec.on_finish] if spec is not None and spec.on_finish is not None else []
    for hook in [*hooks, *registry.finish_listeners()]:
        try:
            hook(job_id)
        except Exception:  # the job is over either way; the hook's owner repairs on beat
            logger.exception("a job's finish hook failed", extra={"job_id": job_id, "job_type": job_type})


def finish_job(job: Job, status: str, *, result: dict[str, Any] | None = None, error: str = "") -> bool:
    values: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "error": error[-4000:]}
    if result is not None:
        values["result"] = result
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 100
    return _end(Job.objects.filter(owns(job)), job.pk, **values)


def requeue_job(job: Job, reason: str) -> bool:
    """Give a running job back to the queue for another attempt (the worker asked for a retry)."""
    if _end(Job.objects.filter(owns(job), cancel_requested=True), job.pk, status=JobStatus.CANCELLED,
            finished_at=timezone.now(), error=f"cancelled by a user ({reason})"[-4000:]):  # fmt: skip
        return False
    updated = Job.objects.filter(owns(job)).update(status=JobStatus.QUEUED, error=reason[-4000:])
    if updated:
        transaction.on_commit(lambda: dispatch_job(job.pk))
    return bool(updated)


def cancel_job(job: Job, *, actor: Any) -> Job:
    """Cancel a queued job at once; ask a running job to stop at its next checkpoint."""
    with transaction.atomic():
        now = timezone.now()
        _end(Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED), job.pk, status=JobStatus.CANCELLED,
             cancel_requested=True, finished_at=now, error="cancelled before it started")  # fmt: skip
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
        record_audit(actor, "job.cancel", job, {})
    job.refresh_from_db()
    return job


def redispatch_backoff(dispatch_count: int) -> timedelta:
    """How long a queued job waits before its message is sent again: doubling, at most an hour.

    A job that is merely waiting behind a long queue would otherwise get one duplicate message per
    interval; the claim makes duplicates harmless, but they would still pile up in the broker.
    """
    factor = 2 ** max(0, min(dispatch_count - 1, 10))
    return timedelta(seconds=min(settings.JOB_REDISPATCH_AFTER * factor, max(3600.0, settings.JOB_REDISPATCH_AFTER)))


@dataclass
class ReconcileReport:
    redispatched: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def reconcile_jobs() -> ReconcileReport:
    """Repair what a lost message or a dead worker left behind. Safe to run concurrently.

    - QUEUED rows whose message was sent long ago and never picked up: the broker lost it (Redis
      restarted or was flushed), so send it again. The claim makes any duplicate harmless.
    - RUNNING rows whose heartbeat stopped: the worker died. Queue another attempt, or fail the job
      with the reason when its attempts are used up.
    """
    report = ReconcileReport()
    now = timezone.now()
    redispatch_before = now - timedelta(seconds=settings.JOB_REDISPATCH_AFTER)
    lost = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(enqueued_at__lt=redispatch_before) | Q(enqueued_at__isnull=True, created_at__lt=redispatch_before)
    )
    # A cancel that arrived while the job was between attempts ends it here.
    cancelled = Job.objects.filter(status=JobStatus.QUEUED, cancel_requested=True)
    for job_id in cancelled.values_list("pk", flat=True)[:500]:
        if _end(Job.objects.filter(pk=job_id, status=JobStatus.QUEUED), job_id, status=JobStatus.CANCELLED,
                finished_at=now, error="cancelled by a user"):  # fmt: skip
            report.cancelled.append(job_id)
    rows = lost.exclude(cancel_requested=True).values_list(
        "pk", "attempts", "max_attempts", "enqueued_at", "dispatch_count"
    )
    for job_id, attempts, max_attempts, enqueued_at, sent in rows[:500]:
        if enqueued_at is not None and enqueued_at > now - redispatch_backoff(sent):
            continue  # probably just waiting in a long queue: don't flood it with duplicates
        if attempts >= max_attempts:
            if _end(Job.objects.filter(pk=job_id, status=JobStatus.QUEUED), job_id, status=JobStatus.FAILED,
                    finished_at=now, error=f"no attempts left ({max_attempts})"):  # fmt: skip
                report.failed.append(job_id)
        elif dispatch_job(job_id):
            report.redispatched.append(job_id)

    stale_before = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    # A handler stuck in I/O keeps beating but never reaches a checkpoint: its timeout ends it here.
    running = Job.objects.filter(status=JobStatus.RUNNING, timeout_seconds__isnull=False)
    for job in running.only("pk", "attempts", "started_at", "timeout_seconds")[:500]:
        grace = timedelta(seconds=job.timeout_seconds + settings.JOB_HEARTBEAT_TIMEOUT)
        if (
            job.started_at
            and job.started_at + grace < now
            and _end(Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts), job.pk,
                     status=JobStatus.FAILED, finished_at=now, error=f"timed out after {job.timeout_seconds}s")
        ):  # fmt: skip
            report.failed.append(job.pk)
    dead = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
    for job in dead.only("pk", "attempts", "max_attempts", "heartbeat_at", "worker")[:500]:
        silent = int((now - job.heartbeat_at).total_seconds()) if job.heartbeat_at else 0
        reason = f"worker {job.worker or '?'} stopped sending heartbeats ({silent}s) during attempt {job.attempts}"
        same_attempt = Q(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts, heartbeat_at__lt=stale_before)
        if _end(Job.objects.filter(same_attempt, cancel_requested=True), job.pk, status=JobStatus.CANCELLED,
                finished_at=now, error=f"cancelled by a user; {reason}"):  # fmt: skip
            report.cancelled.append(job.pk)
        elif job.attempts < job.max_attempts:
            if Job.objects.filter(same_attempt).update(status=JobStatus.QUEUED, error=reason):
                _log_system(job.pk, f"{reason}; retrying")
                dispatch_job(job.pk)
                report.retried.append(job.pk)
        elif _end(Job.objects.filter(same_attempt), job.pk, status=JobStatus.FAILED, finished_at=now,
                  error=f"{reason}; no attempts left ({job.max_attempts})"):  # fmt: skip
            _log_system(job.pk, f"{reason}; failed after {job.max_attempts} attempts")
            report.failed.append(job.pk)
    if report.redispatched or report.retried or report.failed or report.cancelled:
        logger.info(
            "reconciled jobs",
            extra={
                "redispatched": report.redispatched,
                "retried": report.retried,
                "failed": report.failed,
                "cancelled": report.cancelled,
            },
        )
    return report


def _log_system(job_id: int, line: str) -> None:
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(pk=job_id).only("log").first()
        if row is not None:
            stamp = timezone.now().strftime("%H:%M:%S")
            Job.objects.filter(pk=job_id).update(log=(row.log + f"[{stamp}] {line}\n")[-LOG_TAIL_CHARS:])
