"""What lies downstream of a dataset version (runs, later models and deployments), for its page.

`datasets` may not import the apps above it, so they register a provider here, usually in their
AppConfig.ready, the same way as `datasets.dependants`:

    from datasets.lineage_hooks import Downstream, register_downstream_provider

    def runs_downstream(version, user):
        return [Downstream("run", run.name, url, context=experiment.name, status=run.status) for run in ...]

    register_downstream_provider("experiments.runs", runs_downstream)

Unlike dependants (which decide whether a version may be deleted, so they list everything), a
downstream provider gets the viewing user and returns only what that user may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets.models import DatasetVersion


@dataclass(frozen=True)
class Downstream:
    kind: str  # "run"; later "model version", "deployment"
    label: str
    url: str = ""
    context: str = ""  # where it lives, e.g. the run's experiment
    context_url: str = ""
    status: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DownstreamProvider = Callable[["DatasetVersion", Any], Iterable[Downstream]]

_PROVIDERS: dict[str, DownstreamProvider] = {}


def register_downstream_provider(name: str, provider: DownstreamProvider) -> None:
    """Add (or replace) the provider called `name`."""
    _PROVIDERS[name] = provider


def unregister_downstream_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)


def downstream_provider(name: str) -> DownstreamProvider | None:
    return _PROVIDERS.get(name)


def downstream_by_provider(version: DatasetVersion, user: Any) -> dict[str, list[Downstream]]:
    return {name: list(_PROVIDERS[name](version, user)) for name in sorted(_PROVIDERS)}


def downstream_of(version: DatasetVersion, user: Any) -> list[Downstream]:
    return [item for items in downstream_by_provider(version, user).values() for item in items]
