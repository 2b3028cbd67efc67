"""What depends on a dataset version, as told by the apps above this one.

`datasets` may not import the apps that use its versions (runs, models, pipelines), so those apps
register a provider here, usually in their AppConfig.ready:

    from datasets.dependants import Dependant, register_provider

    def runs_using(version):
        return [Dependant("run", run.name, f"/experiments/runs/{run.pk}/") for run in ...]

    register_provider("experiments.runs", runs_using)

`datasets.services.delete_version` asks every provider and refuses to delete a version that has any
dependant. A provider gets the version and returns what uses it; it must not write.

Everything counts for deletion, but not everything may be named to everyone: a run in an experiment
the deleting user cannot read is counted ("and 3 runs you cannot see"), not named. A provider that
takes a `user` keyword is told who asks and marks what that user may not see with `hidden=True`:

    def runs_using(version, *, user=None):
        readable = set(visible_experiments(user).values_list("pk", flat=True)) if user else None
        return [Dependant("run", ..., hidden=readable is not None and run.experiment_id not in readable) ...]

For a provider without one, a downstream provider registered under the same name
(`datasets.lineage_hooks`, which gets the user and returns only what they may see) decides: a
dependant whose URL it did not return is hidden. That errs on the side of hiding, since downstream
lists may be capped.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets.lineage_hooks import Downstream
    from datasets.models import DatasetVersion


@dataclass(frozen=True)
class Dependant:
    kind: str  # "run", "model version", "pipeline"...
    label: str
    url: str = ""
    hidden: bool = field(default=False, compare=False)  # the asking user may not see it: count it, never name it

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("hidden")
        return found

    def __str__(self) -> str:
        return f"{self.kind} {self.label}"


Provider = Callable[..., Iterable[Dependant]]

_PROVIDERS: dict[str, Provider] = {}
_USER_AWARE: set[str] = set()


def register_provider(name: str, provider: Provider) -> None:
    """Add (or replace) the provider called `name`: `provider(version)` or `provider(version, *, user)`."""
    _PROVIDERS[name] = provider
    _USER_AWARE.discard(name)
    if "user" in inspect.signature(provider).parameters:
        _USER_AWARE.add(name)


def unregister_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)
    _USER_AWARE.discard(name)


def dependants_of(
    version: DatasetVersion, user: Any = None, *, downstream: dict[str, list[Downstream]] | None = None
) -> list[Dependant]:
    """Everything that uses `version`; with `user`, what they may not see is marked `hidden`.

    `downstream` is `lineage_hooks.downstream_by_provider(version, user)` when the caller has it already.
    """
    from datasets.lineage_hooks import downstream_provider

    found: list[Dependant] = []
    for name in sorted(_PROVIDERS):
        provider = _PROVIDERS[name]
        if name in _USER_AWARE:
            found.extend(provider(version, user=user))
            continue
        items = list(provider(version))
        described = downstream_provider(name) if user is not None else None
        if described is not None and items:
            listed = downstream[name] if downstream is not None and name in downstream else described(version, user)
            seen = {item.url for item in listed}
            items = [Dependant(d.kind, d.label, d.url, hidden=d.hidden or d.url not in seen) for d in items]
        found.extend(items)
    return found


def hidden_summary(dependants: Iterable[Dependant]) -> str:
    """`3 runs you cannot see` (kinds counted apart: `2 runs and 1 model version you cannot see`); "" if none."""
    counts = Counter(d.kind for d in dependants if d.hidden)
    if not counts:
        return ""
    parts = [f"{count:,} {kind}{'' if count == 1 else 's'}" for kind, count in sorted(counts.items())]
    return f"{' and '.join(parts)} you cannot see"
