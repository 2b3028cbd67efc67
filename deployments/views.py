"""Deployments pages: the list, and a deployment's page with what serves, the rollout in flight (live),
its gates and canary health, the controls to deploy, pause, promote and roll back, and the timeline.

A deployment is visible to whoever may READ its registered model; changing it takes EDIT on the model
(and the editor role), as the API does. Every write goes through deployments.services.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Max, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from deployments import kubernetes, queries, services
from deployments.models import Deployment, DeploymentRevision, RevisionState
from experiments.models import Permission
from registry.models import ModelVersion, RegisteredModelAlias
from registry.permissions import can, visible_models

DEPLOYMENTS_PER_PAGE = 50
TIMELINE_EVENTS = 200
ROLLOUT_HISTORY = 10


def _visible(request: HttpRequest) -> QuerySet[Deployment]:
    return Deployment.objects.filter(registered_model__in=visible_models(request.user))


def index(request: HttpRequest) -> HttpResponse:
    deployments = queries.with_serving(
        _visible(request).select_related("registered_model").annotate(last_event=Max("events__time")).order_by("name")
    )
    page = Paginator(deployments, DEPLOYMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "deployments/index.html",
        {"page": page, "any_models": visible_models(request.user).exists(), "site_url": settings.SITE_URL},
    )


def _deployment_or_404(request: HttpRequest, name: str) -> Deployment:
    deployment = (
        _visible(request)
        .select_related("registered_model", "holdout_dataset_version__dataset")
        .filter(name=name)
        .first()
    )
    if deployment is None:
        raise Http404(f"no deployment named {name!r}")
    return deployment


def _editable(request: HttpRequest, name: str) -> Deployment:
    deployment = _deployment_or_404(request, name)
    if not can(request.user, deployment.registered_model, Permission.EDIT):
        raise PermissionDenied(f"You need EDIT on the registered model {deployment.registered_model.name!r}.")
    return deployment


def detail(request: HttpRequest, name: str) -> HttpResponse:
    deployment = _deployment_or_404(request, name)
    revisions = list(deployment.revisions.select_related("model_version").order_by("-created", "-id"))
    serving = sorted(
        (r for r in revisions if r.state == RevisionState.ACTIVE), key=lambda r: (-r.traffic_weight, -r.pk)
    )
    history = list(queries.rollouts().filter(deployment=deployment)[:ROLLOUT_HISTORY])
    current = next((r for r in history if r.is_active), None)
    shown = current or (history[0] if history else None)
    model = deployment.registered_model
    asked = _serving_at(request, deployment, revisions)
    return render(
        request,
        "deployments/detail.html",
        {
            "deployment": deployment,
            "serving": serving,
            "revisions": revisions,
            "rollout": shown,
            "live": current is not None,
            "history": history,
            "events": list(deployment.events.order_by("-time", "-id")[:TIMELINE_EVENTS]),
            "can_edit": can(request.user, model, Permission.EDIT),
            "served": services.served_revisions(deployment),
            "versions": ModelVersion.objects.filter(model=model).order_by("-version").values_list("version", flat=True),
            "aliases": RegisteredModelAlias.objects.filter(model=model)
            .order_by("alias")
            .values_list("alias", flat=True),
            "model_server_url": settings.MODEL_SERVER_URL,
            "asked": asked,
        },
    )


def _serving_at(request: HttpRequest, deployment: Deployment, revisions: list[DeploymentRevision]) -> dict | None:
    """The answer to "which version served at T?" when the page was asked it (`?at=`)."""
    raw = request.GET.get("at", "").strip()
    if not raw:
        return None
    when = queries.parse_moment(raw)
    if when is None:
        return {"raw": raw, "error": "Give a date and time, e.g. 2026-12-01 14:00 (UTC)."}
    serving = queries.serving_at(deployment, when)
    retired = {r.model_version.version: r for r in revisions if r.state == RevisionState.RETIRED}
    rows = [(v, serving.weights[v], retired.get(v)) for v in serving.versions]
    return {"raw": raw, "when": when, "rows": rows, "since": serving.since}


def _back(deployment: Deployment) -> HttpResponse:
    return redirect("deployments:detail", name=deployment.name)


@require_POST
@role_required("editor")
def deploy(request: HttpRequest, name: str) -> HttpResponse:
    deployment = _editable(request, name)
    target = request.POST.get("target", "").strip() or None
    try:
        rollout = services.deploy(deployment, target, actor=request.user)
    except services.DeploymentError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Rolling out version {rollout.revision.model_version.version}.")
    return _back(deployment)


@require_POST
@role_required("editor")
def command(request: HttpRequest, name: str, action: str) -> HttpResponse:
    deployment = _editable(request, name)
    rollout = services.current_rollout(deployment)
    if rollout is None:
        messages.error(request, "No rollout of this deployment is in progress.")
        return _back(deployment)
    try:
        services.command_rollout(rollout, action, actor=request.user)
    except services.DeploymentError as error:
        messages.error(request, str(error))
    else:
        done = {"pause": "Paused", "resume": "Resumed", "promote": "Promoted", "rollback": "Rolled back"}[action]
        messages.success(request, f"{done} the rollout of version {rollout.revision.model_version.version}.")
    return _back(deployment)


@require_POST
@role_required("editor")
def rollback(request: HttpRequest, name: str, revision: int) -> HttpResponse:
    deployment = _editable(request, name)
    target = deployment.revisions.select_related("model_version").filter(pk=revision).first()
    if target is None:
        raise Http404("no such revision of this deployment")
    try:
        services.rollback(deployment, target, actor=request.user)
    except services.DeploymentError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Version {target.model_version.version} serves all the traffic again.")
    return _back(deployment)


def manifests(request: HttpRequest, name: str) -> HttpResponse:
    """The deployment's Kubernetes manifests as a download (the API's `manifests/` gives the same file)."""
    deployment = _deployment_or_404(request, name)
    response = HttpResponse(kubernetes.manifests_yaml(deployment), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{deployment.name}-kubernetes.yaml"'
    return response
