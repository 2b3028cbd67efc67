"""Thin Celery tasks of pipelines."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="pipelines.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Start the runs of due schedules, and move every running run on (repairs a lost job notification)."""
    from pipelines.engine import advance_running
    from pipelines.services import run_due_schedules

    started = run_due_schedules()
    return {"scheduled": len(started), "advanced": advance_running()}
