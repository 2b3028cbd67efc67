"""Thin Celery tasks of monitoring."""

from __future__ import annotations

from celery import shared_task

from monitoring import rollups


@shared_task(name="monitoring.rollup", ignore_result=True, acks_late=False)
def rollup() -> dict[str, int]:
    report = rollups.fill_rollups()
    return {"rows": report.rows, "minutes": report.minutes, "cursor": report.cursor}
