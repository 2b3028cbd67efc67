"""What depends on a dataset version, as told by the apps above this one.

`datasets` may not import the apps that use its versions (runs, models, pipelines), so those apps
register a provider here, usually in their AppConfig.ready:

    from datasets.dependants import Dependant, register_provider

    def runs_using(version):
        return [Dependant("run", run.name, f"/experiments/runs/{run.pk}/") for run in ...]

    register_provider("experiments.runs", runs_using)

`datasets.services.delete_version` asks every provider and refuses to delete a version that has any
dependant. A provider gets the version and returns what uses it; it must not write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets.models import DatasetVersion


@dataclass(frozen=True)
class Dependant:
    kind: str  # "run", "model version", "pipeline"...
    label: str
    url: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind} {self.label}"


Provider = Callable[["DatasetVersion"], Iterable[Dependant]]

_PROVIDERS: dict[str, Provider] = {}


def register_provider(name: str, provider: Provider) -> None:
    """Add (or replace) the provider called `name`."""
    _PROVIDERS[name] = provider


def unregister_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)


def dependants_of(version: DatasetVersion) -> list[Dependant]:
    found: list[Dependant] = []
    for name in sorted(_PROVIDERS):
        found.extend(_PROVIDERS[name](version))
    return found
