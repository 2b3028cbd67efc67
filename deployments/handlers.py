"""Job types of deployments. The rollout module loads models, so it is imported only when a worker runs
the job: the web process must never import the model loader (a test checks)."""

from __future__ import annotations

from typing import Any

from deployments.services import ROLLOUT_JOB
from jobs import registry
from jobs.runner import JobContext


@registry.register(ROLLOUT_JOB, label="Deployment rollout", queue="deployments")
def rollout(ctx: JobContext) -> dict[str, Any]:
    from deployments.rollouts import run_rollout

    return run_rollout(ctx)
