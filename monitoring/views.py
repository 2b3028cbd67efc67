"""Monitoring pages (the overview of every deployment, one deployment's charts) and Prometheus /metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client import CONTENT_TYPE_LATEST

from deployments.models import Deployment
from monitoring import charts, queries
from monitoring.metrics import exposition
from registry.permissions import visible_models

AUTO_REFRESH_SECONDS = 30


def _visible(request: HttpRequest) -> list[Deployment]:
    return list(
        Deployment.objects.filter(registered_model__in=visible_models(request.user))
        .select_related("registered_model")
        .order_by("name")
    )


def index(request: HttpRequest) -> HttpResponse:
    deployments = _visible(request)
    summaries = queries.summaries(deployments, timezone.now())
    rows = [(d, summaries[d.pk]) for d in deployments]
    return render(request, "monitoring/index.html", {"rows": rows, "refresh": AUTO_REFRESH_SECONDS})


def _moment(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None or not 1970 <= parsed.year <= 9000:
        return None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _range(request: HttpRequest) -> tuple[datetime, datetime, str, str]:
    """(start, end, the range's name or "custom", an error to show) from ?range= or ?start=&end=."""
    now = timezone.now()
    start_raw, end_raw = request.GET.get("start", ""), request.GET.get("end", "")
    if start_raw or end_raw:
        start, end = _moment(start_raw), _moment(end_raw) if end_raw else now
        if start is None or end is None:
            return (
                now - queries.RANGES["24h"],
                now,
                "24h",
                "Give start and end as dates and times, e.g. 2026-12-01T14:00.",
            )
        if not start < end:
            return now - queries.RANGES["24h"], now, "24h", "The start must come before the end."
        if end - start > timedelta(days=90):
            return now - queries.RANGES["24h"], now, "24h", "A custom range spans at most 90 days."
        return start, end, "custom", ""
    name = request.GET.get("range", "24h")
    if name not in queries.RANGES:
        name = "24h"
    return now - queries.RANGES[name], now, name, ""


def deployment(request: HttpRequest, name: str) -> HttpResponse:
    found = next((d for d in _visible(request) if d.name == name), None)
    if found is None:
        raise Http404(f"no deployment named {name!r}")
    start, end, range_name, error = _range(request)
    series = queries.series(found, start, end)
    figures = {
        "latency": json.dumps(charts.latency_figure(series)),
        "traffic": json.dumps(charts.traffic_figure(series)),
        "quality": json.dumps(charts.quality_figure(series)),
    }
    requests = sum(s.get("requests") for s in series.total)
    return render(
        request,
        "monitoring/deployment.html",
        {
            "deployment": found,
            "series": series,
            "figures": figures,
            "range_name": range_name,
            "ranges": list(queries.RANGES),
            "range_error": error,
            "start": start,
            "end": end,
            "requests": requests,
            "labelled": any(s.get("labelled") or s.get("valued") for s in series.total),
            "refresh": AUTO_REFRESH_SECONDS if range_name != "custom" else 0,
        },
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Needs a token like every API: Prometheus sends it as a Bearer header."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
