"""What apps above the registry add to a registered model's page: timeline entries and where it serves.

`registry` may not import them, so they register a provider here in their AppConfig.ready (as
`datasets.lineage_hooks` does for dataset versions). A provider gets the model and the viewing user
and returns only what that user may see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.models import RegisteredModel


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the model's timeline from another app, e.g. a deployment's promotion."""

    when: datetime
    actor: str
    text: str
    url: str = ""
    label: str = ""  # the link's text, e.g. the deployment's name


@dataclass(frozen=True)
class Placement:
    """Somewhere the model serves, e.g. a deployment, with what it serves now."""

    label: str
    url: str
    context: str = ""  # e.g. the environment
    serving: str = ""  # e.g. "v2 · 90%, v3 · 10%"
    status: str = ""  # e.g. a rollout in progress


@dataclass
class ModelPageExtras:
    timeline: list[TimelineEntry] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)


ModelPageProvider = Callable[["RegisteredModel", Any], ModelPageExtras]

_PROVIDERS: dict[str, ModelPageProvider] = {}


def register_model_page_provider(name: str, provider: ModelPageProvider) -> None:
    """Add (or replace) the provider called `name`."""
    _PROVIDERS[name] = provider


def model_page_extras(model: RegisteredModel, user: Any) -> ModelPageExtras:
    merged = ModelPageExtras()
    for name in sorted(_PROVIDERS):
        extras = _PROVIDERS[name](model, user)
        merged.timeline.extend(extras.timeline)
        merged.placements.extend(extras.placements)
    return merged
