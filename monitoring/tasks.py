"""Thin Celery tasks of monitoring."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from monitoring import alerts, drift, retention, rollups


@shared_task(name="monitoring.rollup", ignore_result=True, acks_late=False)
def rollup() -> dict[str, int]:
    """Fill batch after batch until caught up (or 20 s have passed: the next beat carries on)."""
    started = time.monotonic()
    rows = minutes = 0
    while True:
        report = rollups.fill_rollups()
        rows, minutes = rows + report.rows, minutes + report.minutes
        if report.rows < settings.ROLLUP_BATCH_ROWS or time.monotonic() - started > 20:
            return {"rows": rows, "minutes": minutes, "cursor": report.cursor}


@shared_task(name="monitoring.drift", ignore_result=True, acks_late=False)
def compute_drift() -> int:
    return drift.compute_all()


@shared_task(name="monitoring.evaluate_alerts", ignore_result=True, acks_late=False)
def evaluate_alerts() -> dict[str, int]:
    return alerts.evaluate_rules()


@shared_task(
    name="monitoring.notify", ignore_result=True, acks_late=True, autoretry_for=(alerts.WebhookRetry,),
    retry_backoff=True, retry_backoff_max=600, retry_jitter=True, max_retries=8,
)  # fmt: skip
def notify(alert_id: int, event: str) -> int:
    return len(alerts.notify(alert_id, event))


@shared_task(name="monitoring.prune", ignore_result=True, acks_late=False)
def prune() -> dict[str, int]:
    return retention.prune().deleted
