"""Thin Celery tasks of monitoring."""

from __future__ import annotations

from celery import shared_task

from monitoring import drift, rollups


@shared_task(name="monitoring.rollup", ignore_result=True, acks_late=False)
def rollup() -> dict[str, int]:
    report = rollups.fill_rollups()
    return {"rows": report.rows, "minutes": report.minutes, "cursor": report.cursor}


@shared_task(name="monitoring.drift", ignore_result=True, acks_late=False)
def compute_drift() -> int:
    return drift.compute_all()
