"""Retention: prediction log rows (and their feedback) older than PREDICTION_LOG_RETENTION_DAYS are
deleted in batches, but never a row the rollups have not read yet; rollups and drift windows older than
ROLLUP_RETENTION_DAYS go too. Runs on beat (`monitoring.prune`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from deployments.models import PredictionLog
from monitoring.models import DriftResult, Feedback, MinuteRollup, RollupCursor
from monitoring.rollups import CURSOR

BATCH = 10_000
BUDGET_SECONDS = 60.0


@dataclass
class PruneReport:
    deleted: dict[str, int] = field(default_factory=dict)


def _delete_in_batches(queryset: object, name: str, report: PruneReport, deadline: float) -> None:
    total = 0
    while time.monotonic() < deadline:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:BATCH])  # type: ignore[attr-defined]
        if not ids:
            break
        total += queryset.model.objects.filter(pk__in=ids).delete()[0]  # type: ignore[attr-defined]
    report.deleted[name] = total


def prune(now: object = None) -> PruneReport:
    now = now or timezone.now()
    report = PruneReport()
    deadline = time.monotonic() + BUDGET_SECONDS
    days = settings.PREDICTION_LOG_RETENTION_DAYS
    if days:
        cutoff = (now - timedelta(days=days)).replace(second=0, microsecond=0)  # type: ignore[operator]
        read_up_to = RollupCursor.objects.filter(name=CURSOR).values_list("last_id", flat=True).first() or 0
        _delete_in_batches(PredictionLog.objects.filter(time__lt=cutoff, pk__lte=read_up_to), "predictions", report,
                           deadline)  # fmt: skip
        _delete_in_batches(Feedback.objects.filter(received__lt=cutoff), "feedback", report, deadline)
    days = settings.ROLLUP_RETENTION_DAYS
    if days:
        cutoff = now - timedelta(days=days)  # type: ignore[operator]
        _delete_in_batches(MinuteRollup.objects.filter(minute__lt=cutoff), "rollups", report, deadline)
        _delete_in_batches(DriftResult.objects.filter(window_end__lt=cutoff), "drift", report, deadline)
    return report
