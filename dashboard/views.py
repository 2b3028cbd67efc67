"""The home page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import ApiToken, AuditEvent
from accounts.services import has_role
from jobs.charts import jobs_per_day_figure
from jobs.models import Job, JobStatus
from jobs.queries import jobs_per_day


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _activity(user: Any) -> Any:
    """Admins see everyone's changes; others their own, since events name objects (e.g. private
    experiments) that not everyone may read."""
    events = AuditEvent.objects.all()
    if not has_role(user, "admin"):
        events = events.filter(actor=user)
    return events[:12]


def home(request: HttpRequest) -> HttpResponse:
    since = timezone.now() - timedelta(days=1)
    job_counts = Job.objects.aggregate(
        total=Count("id"),
        running=Count("id", filter=Q(status=JobStatus.RUNNING)),
        queued=Count("id", filter=Q(status=JobStatus.QUEUED)),
        failed_24h=Count("id", filter=Q(status=JobStatus.FAILED, finished_at__gte=since)),
        succeeded_24h=Count("id", filter=Q(status=JobStatus.SUCCEEDED, finished_at__gte=since)),
    )
    cards = [
        {
            "label": "Jobs running",
            "value": job_counts["running"],
            "hint": f"{job_counts['queued']} queued",
            "url": "jobs:index",
        },
        {
            "label": "Jobs finished (24h)",
            "value": job_counts["succeeded_24h"],
            "hint": f"{job_counts['failed_24h']} failed",
            "url": "jobs:index",
        },
        {
            "label": "Jobs in total",
            "value": job_counts["total"],
            "hint": "since the portal started",
            "url": "jobs:index",
        },
        {
            "label": "Users",
            "value": get_user_model().objects.filter(is_active=True).count(),
            "hint": _count(ApiToken.objects.filter(revoked_at__isnull=True).count(), "active API token"),
            "url": "accounts:tokens",
        },
    ]
    figure = jobs_per_day_figure(jobs_per_day(14))
    return render(
        request,
        "dashboard/home.html",
        {
            "cards": cards,
            "activity": _activity(request.user),
            "recent_jobs": Job.objects.defer("log", "params", "result")[:6],
            "jobs_figure": json.dumps(figure),
            "has_jobs": job_counts["total"] > 0,
        },
    )
