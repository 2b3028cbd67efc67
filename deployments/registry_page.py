"""The deployments of a registered model, on the model's page: where it serves now, and every rollout
step, promotion and rollback on the model's timeline (registered with `registry.page_hooks`)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from deployments.models import (
    Deployment,
    DeploymentEvent,
)
from deployments.queries import with_serving
from registry.models import RegisteredModel
from registry.page_hooks import ModelPageExtras, Placement, TimelineEntry, register_model_page_provider

TIMELINE_EVENTS = 200
Kind = DeploymentEvent.Kind
SHOWN = (
    Kind.CREATED, Kind.ROLLOUT_STARTED, Kind.TRAFFIC_SHIFTED, Kind.PROMOTED, Kind.ROLLED_BACK, Kind.ROLLOUT_FAILED,
    Kind.GATE_FAILED, Kind.PAUSED, Kind.RESUMED,
)  # fmt: skip


def describe(event: DeploymentEvent) -> str:
    """One line for the model's timeline, from what to what."""
    to, before = event.to_version, event.from_version
    detail = event.detail or {}
    if event.kind == Kind.CREATED:
        return f"deployment created ({detail.get('environment', '')}, selector {detail.get('selector', '')})"
    if event.kind == Kind.ROLLOUT_STARTED:
        return f"rollout of version {to} started" + (f", replacing version {before}" if before else "")
    if event.kind == Kind.TRAFFIC_SHIFTED:
        weight = detail.get("traffic_weight", 100)
        rest = f", version {before} at {100 - weight}%" if before and before != to and weight < 100 else ""
        return f"version {to} at {weight}%{rest}"
    if event.kind == Kind.PROMOTED:
        return f"version {to} serves all traffic" + (f" (was version {before})" if before and before != to else "")
    if event.kind == Kind.ROLLED_BACK:
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"rolled back from version {before} to version {to}{reason}"
    if event.kind == Kind.ROLLOUT_FAILED:
        return f"rollout of version {before} failed: {detail.get('reason', '')}"
    if event.kind == Kind.GATE_FAILED:
        return f"version {to} failed the {detail.get('gate', '')} gate: {detail.get('message', '')}"
    return f"rollout of version {to} {event.get_kind_display().lower()}"


def model_page(model: RegisteredModel, user: Any) -> ModelPageExtras:
    """The page already checked that `user` may read the model, which is what reading its deployments takes."""
    deployments = list(with_serving(Deployment.objects.filter(registered_model=model).order_by("name")))
    placements = [
        Placement(
            d.name,
            reverse("deployments:detail", args=[d.name]),
            context=d.get_environment_display(),
            serving=", ".join(f"v{r.model_version.version} · {r.traffic_weight}%" for r in d.serving),
            status="; ".join(
                f"version {r.revision.model_version.version} {r.get_status_display().lower()}"
                for r in d.active_rollouts
            ),
        )
        for d in deployments
    ]
    events = (
        DeploymentEvent.objects.filter(deployment__registered_model=model, kind__in=SHOWN)
        .select_related("deployment")
        .order_by("-time", "-id")[:TIMELINE_EVENTS]
    )
    timeline = [
        TimelineEntry(
            e.time,
            e.actor_name,
            describe(e),
            reverse("deployments:detail", args=[e.deployment.name]),
            e.deployment.name,
        )
        for e in events
    ]
    return ModelPageExtras(timeline=timeline, placements=placements)


def register() -> None:
    register_model_page_provider("deployments", model_page)
