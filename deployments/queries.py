"""Read-side questions about deployments: what served, at which weights, at a given moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployments.models import (
    ACTIVE_ROLLOUT_STATUSES,
    Deployment,
    DeploymentEvent,
    DeploymentRevision,
    RevisionState,
    Rollout,
)

# The events that move traffic, in the order they happened, rebuild the split at any moment.
TRAFFIC_EVENTS = (DeploymentEvent.Kind.TRAFFIC_SHIFTED, DeploymentEvent.Kind.PROMOTED, DeploymentEvent.Kind.ROLLED_BACK)


@dataclass
class Serving:
    """The versions serving at a moment with their traffic weights, and the event that set that split."""

    weights: dict[int, int] = field(default_factory=dict)
    since: DeploymentEvent | None = None

    @property
    def versions(self) -> list[int]:
        return sorted(self.weights, key=lambda v: (-self.weights[v], -v))


def serving_at(deployment: Deployment, when: datetime) -> Serving:
    """What `deployment` served at `when`, answered from its timeline (so it survives revisions being
    retired or rolled over): the last traffic move at or before `when` decides."""
    serving = Serving()
    events = deployment.events.filter(kind__in=TRAFFIC_EVENTS, time__lte=when).order_by("time", "id")
    for event in events.only("kind", "time", "from_version", "to_version", "detail"):
        if event.kind == DeploymentEvent.Kind.TRAFFIC_SHIFTED:
            weight = int(event.detail.get("traffic_weight", 100))
            weights = {event.to_version: weight if event.from_version != event.to_version else 100}
            if event.from_version not in (None, event.to_version) and weight < 100:
                weights[event.from_version] = 100 - weight
        elif event.to_version is not None:
            weights = {event.to_version: 100}
        else:
            weights = {}
        serving = Serving({v: w for v, w in weights.items() if v is not None and w > 0}, event)
    return serving


def parse_moment(value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it has no offset), `now` when absent, None when unreadable."""
    if value is None or value.strip() == "":
        return timezone.now()
    try:
        parsed = parse_datetime(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed is None or not 1900 <= parsed.year <= 9000:  # far years overflow once moved to UTC
        return None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def rollouts() -> QuerySet[Rollout]:
    """Rollouts with what their pages and serializers show, newest first."""
    return Rollout.objects.select_related(
        "deployment", "revision__model_version", "baseline__model_version", "job", "requested_by"
    ).order_by("-created", "-id")


def with_serving(deployments: QuerySet[Deployment]) -> QuerySet[Deployment]:
    """Each deployment with `.serving` (its active revisions, heaviest first) and `.active_rollouts`,
    in two extra queries for the whole list."""
    return deployments.prefetch_related(
        Prefetch(
            "revisions",
            DeploymentRevision.objects.filter(state=RevisionState.ACTIVE)
            .select_related("model_version")
            .order_by("-traffic_weight", "-id"),
            to_attr="serving",
        ),
        Prefetch(
            "rollouts",
            rollouts().filter(status__in=ACTIVE_ROLLOUT_STATUSES),
            to_attr="active_rollouts",
        ),
    )
