"""The `pipelines.step` job type (small steps run in a worker), the finish listener that moves runs on,
and the events that start runs (an alert opening, a dataset version pushed)."""

from __future__ import annotations

from typing import Any

from jobs import registry
from jobs.runner import JobContext
from mlops_portal import events
from pipelines.steps import INLINE_JOB


@registry.register(INLINE_JOB, label="Pipeline step")
def run_step(ctx: JobContext) -> dict[str, Any]:
    from pipelines.engine import run_inline_step

    return run_inline_step(ctx)


def _job_finished(job_id: int) -> None:
    from pipelines.engine import on_job_finished

    on_job_finished(job_id)


def _alert_opened(**payload: Any) -> None:
    from pipelines.services import on_alert_opened

    on_alert_opened(**payload)


def _dataset_version(**payload: Any) -> None:
    from pipelines.services import on_dataset_version

    on_dataset_version(**payload)


def connect() -> None:
    registry.add_finish_listener("pipelines", _job_finished)
    events.subscribe("alert.opened", "pipelines", _alert_opened)
    events.subscribe("dataset.version_created", "pipelines", _dataset_version)
