"""Monitoring pages and the Prometheus /metrics endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring.metrics import exposition


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/index.html")


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Needs a token like every API: Prometheus sends it as a Bearer header."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
