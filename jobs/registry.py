"""Job types: each app registers the handlers of its long-running operations here.

A handler is a plain function ``handler(ctx: JobContext) -> dict`` that reads `ctx.params`, reports
progress through `ctx`, and returns a JSON-able result. Apps register in their AppConfig.ready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.runner import JobContext

Handler = Callable[["JobContext"], dict[str, Any] | None]
Validator = Callable[[dict[str, Any]], dict[str, Any]]
# Called with the job's id after it reached a final status, whichever way (its worker, a cancel, the
# reconciler): how a sweep or a pipeline learns that a job it waits for is over.
FinishHook = Callable[[int], None]


@dataclass(frozen=True)
class JobType:
    name: str
    label: str
    handler: Handler
    queue: str = "default"
    validate: Validator | None = None
    # Only types with a validator can be started by name through the generic jobs API.
    submittable: bool = False
    on_finish: FinishHook | None = None


_TYPES: dict[str, JobType] = {}


def register(
    name: str,
    *,
    label: str,
    queue: str = "default",
    validate: Validator | None = None,
    submittable: bool = False,
    on_finish: FinishHook | None = None,
) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        _TYPES[name] = JobType(name, label, handler, queue, validate, submittable and validate is not None, on_finish)
        return handler

    return decorator


_FINISH_LISTENERS: dict[str, FinishHook] = {}


def add_finish_listener(name: str, listener: FinishHook) -> None:
    """Hear of every job's end, whatever its type (pipelines wait for jobs of all kinds)."""
    _FINISH_LISTENERS[name] = listener


def finish_listeners() -> list[FinishHook]:
    return list(_FINISH_LISTENERS.values())


def get(name: str) -> JobType | None:
    return _TYPES.get(name)


def all_types() -> list[JobType]:
    return sorted(_TYPES.values(), key=lambda t: t.name)
