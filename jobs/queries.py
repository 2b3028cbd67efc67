"""Read-side helpers for jobs."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from jobs.models import Job


def jobs_per_day(days: int = 14) -> list[dict[str, object]]:
    """Jobs created per day and status over the last `days` days, oldest first, gaps included."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (
        Job.objects.filter(created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[date, str], int] = {(r["day"], r["status"]): r["n"] for r in rows}
    statuses = sorted({status for _, status in counts})
    return [
        {"day": start + timedelta(days=i), **{s: counts.get((start + timedelta(days=i), s), 0) for s in statuses}}
        for i in range(days)
    ]


def job_list() -> QuerySet[Job]:
    return Job.objects.select_related("requested_by").defer("log", "params", "result")
