"""Monitoring pages (the overview of every deployment, one deployment's charts) and Prometheus /metrics."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import yaml
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from deployments.models import Deployment
from deployments.queries import parse_moment
from experiments.models import PERMISSION_RANK, Permission
from monitoring import alerts, charts, grafana, queries
from monitoring.metrics import exposition
from monitoring.models import Alert, AlertRule, AlertStatus, DriftResult
from registry.permissions import can, levels_for, visible_models

AUTO_REFRESH_SECONDS = 30


def _visible_qs(request: HttpRequest) -> QuerySet[Deployment]:
    return Deployment.objects.filter(registered_model__in=visible_models(request.user)).select_related(
        "registered_model"
    )


def _visible(request: HttpRequest) -> list[Deployment]:
    return list(_visible_qs(request).order_by("name"))


def _deployment_or_404(request: HttpRequest, name: str) -> Deployment:
    """One visible deployment by name, found in SQL (not by loading every visible one)."""
    found = _visible_qs(request).filter(name=name).first()
    if found is None:
        raise Http404(f"no deployment named {name!r}")
    return found


def index(request: HttpRequest) -> HttpResponse:
    deployments = _visible(request)
    summaries = queries.summaries(deployments, timezone.now())
    rows = [(d, summaries[d.pk]) for d in deployments]
    firing = Alert.objects.filter(deployment__in=deployments).exclude(status=AlertStatus.RESOLVED).count()
    return render(request, "monitoring/index.html", {"rows": rows, "refresh": AUTO_REFRESH_SECONDS, "firing": firing})


def _range(request: HttpRequest) -> tuple[datetime, datetime, str, str]:
    """(start, end, the range's name or "custom", an error to show) from ?range= or ?start=&end=."""
    now = timezone.now()
    start_raw, end_raw = request.GET.get("start", ""), request.GET.get("end", "")
    if start_raw or end_raw:
        # An empty start is an error here (parse_moment would read it as "now").
        start = parse_moment(start_raw) if start_raw.strip() else None
        end = parse_moment(end_raw)
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
    found = _deployment_or_404(request, name)
    start, end, range_name, error = _range(request)
    series = queries.series(found, start, end)
    figures = {
        "latency": json.dumps(charts.latency_figure(series)),
        "traffic": json.dumps(charts.traffic_figure(series)),
        "quality": json.dumps(charts.quality_figure(series)),
    }
    requests = sum(s.get("requests") for s in series.total)
    drift_rows = queries.drift_cells(found, start, end)
    if drift_rows:
        figures["drift"] = json.dumps(charts.drift_heatmap(drift_rows))
    last = DriftResult.objects.filter(deployment=found, window_end__gt=start, window_end__lte=end).order_by(
        "-window_end"
    )
    latest_end = last.values_list("window_end", flat=True).first()
    latest = list(last.filter(window_end=latest_end).order_by("-psi", "feature")) if latest_end else []
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
            "drift_latest": latest,
            "drift_interval": settings.DRIFT_INTERVAL_SECONDS // 60,
        },
    )


def alerts_page(request: HttpRequest) -> HttpResponse:
    """Open and acknowledged alerts first, then the resolved ones; the rules with their last values."""
    from django.core.paginator import Paginator

    deployments = _visible(request)
    visible = [d.pk for d in deployments]
    found = Alert.objects.filter(deployment_id__in=visible).select_related("rule", "deployment", "acknowledged_by")
    active = list(found.exclude(status=AlertStatus.RESOLVED).order_by("-opened_at"))
    resolved = Paginator(found.filter(status=AlertStatus.RESOLVED).order_by("-resolved_at", "-id"), 25).get_page(
        request.GET.get("page")
    )
    rules = (
        AlertRule.objects.filter(deployment_id__in=visible)
        .select_related("deployment")
        .order_by("deployment__name", "name")
    )
    levels = levels_for(request.user, [d.registered_model for d in deployments])  # one query for all of them
    editable = {d.pk for d in deployments if levels[d.registered_model_id] >= PERMISSION_RANK[Permission.EDIT]}
    return render(
        request,
        "monitoring/alerts.html",
        {"active": active, "page": resolved, "rules": rules, "editable": editable, "refresh": AUTO_REFRESH_SECONDS},
    )


@require_POST
def alert_action(request: HttpRequest, pk: int, act: str) -> HttpResponse:
    alert = Alert.objects.select_related("deployment__registered_model").filter(pk=pk).first()
    if alert is None or not _visible_qs(request).filter(pk=alert.deployment_id).exists():
        raise Http404("no such alert")
    if not can(request.user, alert.deployment.registered_model, Permission.EDIT):
        raise PermissionDenied("You need EDIT on the deployment's model to acknowledge or resolve its alerts.")
    handler = {"acknowledge": alerts.acknowledge, "resolve": alerts.resolve_by_hand}.get(act)
    if handler is None:
        raise Http404("no such action")
    try:
        handler(alert, actor=request.user)
    except alerts.AlertError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Alert #{alert.pk} {'acknowledged' if act == 'acknowledge' else 'resolved'}.")
    return redirect("monitoring:alerts")


def grafana_dashboard(request: HttpRequest, name: str) -> HttpResponse:
    """The deployment's Grafana dashboard (import it, or drop it in a provisioned dashboards folder)."""
    found = _deployment_or_404(request, name)
    body = json.dumps(grafana.dashboard(found.name), indent=2)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="grafana-{found.name}.json"'
    return response


def prometheus_config(request: HttpRequest) -> HttpResponse:
    """A prometheus.yml scraping the portal and the model server of every deployment the user can see."""
    body = "# Generated by MLOps Portal: the portal and each deployment's model server.\n" + yaml.safe_dump(
        grafana.prometheus_config(_visible(request)), sort_keys=False
    )
    response = HttpResponse(body, content_type="application/yaml")
    response["Content-Disposition"] = 'attachment; filename="prometheus.yml"'
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Needs a token like every API: Prometheus sends it as a Bearer header."""
    return HttpResponse(exposition(request.user), content_type=CONTENT_TYPE_LATEST)
