"""Thin Celery tasks: ids in, one service call, nothing returned through the broker."""

from __future__ import annotations

from celery import Task, shared_task

from jobs import runner, services


@shared_task(bind=True, name="jobs.run", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Task, job_id: int) -> str:
    return runner.execute(job_id, worker=self.request.hostname)


@shared_task(name="jobs.reconcile", ignore_result=True, acks_late=False)
def reconcile() -> dict[str, list[int]]:
    report = services.reconcile_jobs()
    return {
        "redispatched": report.redispatched,
        "retried": report.retried,
        "failed": report.failed,
        "cancelled": report.cancelled,
    }
