"""Registry pages: the models list, and a model's page with its versions, aliases and timeline.

A model the user may not READ answers 404, as the MLflow API does. Moving an alias or a stage needs
EDIT and goes through registry.services, which records the move on the timeline.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Max, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from experiments.mlflow_api.common import MlflowError
from experiments.models import PERMISSION_RANK, LatestMetric, Permission
from experiments.permissions import visible_experiments
from mlops_portal.views import safe_next
from registry import permissions, services
from registry.lookups import registered_model_for, version_for
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias, RegistryEvent, Stage
from registry.page_hooks import model_page_extras

MODELS_PER_PAGE = 50
TIMELINE_EVENTS = 200
SIDE_BY_SIDE_METRICS = 6


def ms_to_datetime(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def index(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    qs = permissions.visible_models(request.user).annotate(latest_version=Max("versions__version"))
    if search:
        qs = qs.filter(name__icontains=search)
    page = Paginator(qs.order_by("name"), MODELS_PER_PAGE).get_page(request.GET.get("page"))
    models = list(page.object_list)
    aliases: dict[int, list[RegisteredModelAlias]] = defaultdict(list)
    for alias in RegisteredModelAlias.objects.filter(model__in=models).select_related("version").order_by("alias"):
        aliases[alias.model_id].append(alias)
    for model in models:
        model.alias_list = aliases[model.pk]
        model.updated = ms_to_datetime(model.last_updated_timestamp)
    return render(
        request,
        "registry/index.html",
        {
            "page": page,
            "models": models,
            "search": search,
            "any_models": bool(models) or permissions.visible_models(request.user).exists(),
            "site_url": settings.SITE_URL,
        },
    )


def _model_or_404(request: HttpRequest, name: str, level: str = Permission.READ) -> RegisteredModel:
    try:
        return registered_model_for(request.user, name, level)
    except MlflowError as exc:
        if exc.error_code == "PERMISSION_DENIED":
            raise PermissionDenied(exc.message) from None
        raise Http404(exc.message) from None


def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = _model_or_404(request, name)
    versions = list(
        ModelVersion.objects.filter(model=model)
        .select_related("run", "creator")
        .prefetch_related(Prefetch("aliases", queryset=RegisteredModelAlias.objects.order_by("alias")))
        .order_by("-version")
    )
    readable = set(visible_experiments(request.user).values_list("pk", flat=True))
    for version in versions:
        version.created = ms_to_datetime(version.creation_timestamp)
        if version.run is not None and version.run.experiment_id not in readable:
            version.run = None  # a run is seen through its experiment's permission, not the model's
    events: list[Any] = list(RegistryEvent.objects.filter(model=model).order_by("-timestamp", "-id")[:TIMELINE_EVENTS])
    for event in events:
        event.when = ms_to_datetime(event.timestamp)
    extras = model_page_extras(model, request.user)
    # Deployment events (and whatever else apps above add) interleave with the registry's own, newest first.
    events = sorted([*events, *extras.timeline], key=lambda e: e.when, reverse=True)[:TIMELINE_EVENTS]
    metric_keys = _source_metrics(versions)
    can_edit = permissions.level_for(request.user, model) >= PERMISSION_RANK[Permission.EDIT]
    return render(
        request,
        "registry/model.html",
        {
            "model": model,
            "versions": versions,
            "aliases": RegisteredModelAlias.objects.filter(model=model).select_related("version").order_by("alias"),
            "events": events,
            "can_edit": can_edit,
            "stages": [s.value for s in Stage],
            "tags": model.tags.order_by("key"),
            "updated": ms_to_datetime(model.last_updated_timestamp),
            "placements": extras.placements,
            "metric_keys": metric_keys,
        },
    )


def _source_metrics(versions: list[ModelVersion]) -> list[str]:
    """The source runs' latest metrics side by side: the most common keys (at most SIDE_BY_SIDE_METRICS),
    and each version's values, set on `version.metric_values` in key order (one query)."""
    run_ids = {v.run_id for v in versions if v.run is not None}
    by_run: dict[str, dict[str, float]] = defaultdict(dict)
    for run_id, key, value in LatestMetric.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value"):
        by_run[run_id][key] = value
    counts: dict[str, int] = defaultdict(int)
    for values in by_run.values():
        for key in values:
            counts[key] += 1
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:SIDE_BY_SIDE_METRICS]
    keys.sort()
    for version in versions:
        values = by_run.get(version.run_id, {}) if version.run is not None else {}
        version.metric_values = [values.get(key) for key in keys]
    return keys


def _back(model: RegisteredModel) -> HttpResponse:
    return redirect(reverse("registry:model", args=[model.name]))


@require_POST
def set_alias(request: HttpRequest, name: str) -> HttpResponse:
    model = _model_or_404(request, name, Permission.EDIT)
    alias = request.POST.get("alias", "").strip()
    try:
        if request.POST.get("action") == "delete":
            services.delete_alias(model, alias, actor=request.user)
            messages.success(request, f"Removed alias @{alias}.")
        else:
            version = version_for(request.user, model.name, request.POST.get("version"), Permission.EDIT)
            services.set_alias(model, alias, version, actor=request.user)
            messages.success(request, f"@{alias} now points at version {version.version}.")
    except MlflowError as exc:
        messages.error(request, exc.message)
    return _back(model)


@require_POST
def transition_stage(request: HttpRequest, name: str) -> HttpResponse:
    model = _model_or_404(request, name, Permission.EDIT)
    try:
        version = version_for(request.user, model.name, request.POST.get("version"), Permission.EDIT)
        archive = request.POST.get("archive_existing_versions") == "on"
        services.transition_stage(
            version, request.POST.get("stage"), archive_existing_versions=archive, actor=request.user
        )
        messages.success(request, f"Version {version.version} is now in {version.current_stage}.")
    except MlflowError as exc:
        messages.error(request, exc.message)
    return _back(model)


@require_POST
@role_required("editor")
def register_from_run(request: HttpRequest) -> HttpResponse:
    """Register a run's model (`runs:/<id>/model`) as a new version of a model, creating the model if it does
    not exist yet (its creator gets MANAGE). The same checks as the MLflow API: READ on the run, EDIT on an
    existing model, a source inside the portal's store."""
    source = request.POST.get("source", "").strip()
    name = request.POST.get("name", "").strip()
    try:
        version = services.register_source(request.user, name, source)
    except MlflowError as exc:
        if exc.error_code == "PERMISSION_DENIED":
            raise PermissionDenied(exc.message) from None
        messages.error(request, exc.message)
        return redirect(safe_next(request, reverse("registry:index")))
    messages.success(request, f"Registered version {version.version} of {version.model.name}.")
    return _back(version.model)
