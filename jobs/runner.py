"""Runs one claimed job inside a worker: heartbeats, progress, cancellation, timeouts, outcome."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from jobs import registry, services
from jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)


class JobStopped(Exception):
    """Raised inside a handler at a checkpoint when the job must stop (cancel, timeout, lost)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RetryableJobError(Exception):
    """A handler raises this for a transient failure worth another attempt."""


class JobContext:
    """What a handler sees: its parameters and ways to report progress and to stop cleanly."""

    def __init__(self, job: Job, *, inline_heartbeat: bool = False) -> None:
        self.job = job
        self.params: dict[str, Any] = job.params
        self._stop: JobStopped | None = None
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds else None
        # Without the heartbeat thread (unit tests, whose uncommitted rows another connection cannot
        # see), checkpoints beat instead.
        self._inline_heartbeat = inline_heartbeat
        self._last_beat = time.monotonic()
        self._stop_listeners: list[Callable[[], None]] = []

    def on_stop(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from the heartbeat thread) as soon as the job must stop, so a loop that cannot
        afford a checkpoint per step (Keras's fit: a per-batch callback costs it a sync per batch) can end
        at its next step by itself; the handler then calls `checkpoint()` to raise the stop."""
        with self._lock:
            stopped = self._stop is not None
            self._stop_listeners.append(listener)
        if stopped:
            listener()

    def progress(self, pct: float, message: str = "") -> None:
        self.checkpoint()
        if not services.report_progress(self.job, pct, message):
            self._set_stop(JobStopped("lost", "another worker took over this job"))
            self.checkpoint()

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        services.append_log(self.job, f"[{stamp}] {line}")

    def checkpoint(self) -> None:
        """Raise JobStopped if the job was cancelled, timed out or taken over. Call it often."""
        if self._inline_heartbeat and time.monotonic() - self._last_beat > settings.JOB_HEARTBEAT_INTERVAL:
            self._last_beat = time.monotonic()
            self.beat()
        self._check_deadline()
        with self._lock:
            stop = self._stop
        if stop is not None:
            raise stop

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._set_stop(JobStopped(JobStatus.FAILED, f"timed out after {self.job.timeout_seconds}s"))

    def beat(self) -> None:
        """Refresh the heartbeat and take note of a cancel request, of the timeout or of losing the job."""
        self._check_deadline()
        owned, cancel = services.heartbeat(self.job)
        if not owned:
            self._set_stop(JobStopped("lost", "another worker took over this job"))
        elif cancel:
            self._set_stop(JobStopped(JobStatus.CANCELLED, "cancelled by a user"))

    def _set_stop(self, stop: JobStopped) -> None:
        with self._lock:
            if self._stop is not None:
                return
            self._stop = stop
            listeners = list(self._stop_listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # the stop is recorded either way; checkpoint() raises it
                logger.warning("a stop listener failed", exc_info=True)


class _Heartbeat(threading.Thread):
    """Keeps heartbeat_at fresh while the handler computes, and notices cancel requests."""

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job.pk}")
        self.ctx = ctx
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(settings.JOB_HEARTBEAT_INTERVAL):
                try:
                    self.ctx.beat()
                except Exception:  # a database blip must not silently end the heartbeats
                    logger.warning("heartbeat failed; will try again", exc_info=True)
                    close_old_connections()
        finally:
            close_old_connections()


def worker_name(node: str | None = None) -> str:
    return f"{node or socket.gethostname()} pid {os.getpid()}"


def execute(job_id: int, worker: str | None = None) -> str:
    """Claim and run a job. Returns what happened, for logs and tests."""
    job = services.claim_job(job_id, worker_name(worker))
    if job is None:
        return "skipped"
    spec = registry.get(job.type)
    if spec is None:
        services.finish_job(job, JobStatus.FAILED, error=f"unknown job type {job.type!r}")
        return "failed"
    threaded = settings.JOB_HEARTBEAT_THREAD
    ctx = JobContext(job, inline_heartbeat=not threaded)
    beat = _Heartbeat(ctx)
    if threaded:
        beat.start()
    try:
        ctx.log(f"attempt {job.attempts} of {job.max_attempts} started on {job.worker}")
        result = spec.handler(ctx) or {}
        json.dumps(result)  # a result that cannot be stored must fail the job, not loop it
    except JobStopped as stop:
        if stop.status == "lost":
            return "lost"
        ctx.log(stop.reason)
        services.finish_job(job, stop.status, error=stop.reason)
        return str(stop.status)
    except RetryableJobError as exc:
        if job.attempts < job.max_attempts:
            ctx.log(f"transient failure, will retry: {exc}")
            services.requeue_job(job, str(exc))
            return "retrying"
        services.finish_job(job, JobStatus.FAILED, error=f"{exc} (no attempts left)")
        return "failed"
    except Exception as exc:  # a handler bug must fail its job, not the worker
        logger.exception("job failed", extra={"job_id": job.pk, "job_type": job.type})
        ctx.log(f"failed: {exc!r}")
        services.finish_job(job, JobStatus.FAILED, error="".join(traceback.format_exception(exc))[-4000:])
        return "failed"
    finally:
        beat.done.set()
        if threaded:
            beat.join(timeout=5)
    ctx.log("finished")
    services.finish_job(job, JobStatus.SUCCEEDED, result=result)
    return "succeeded"
