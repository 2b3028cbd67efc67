"""Job types of experiments. Training imports TensorFlow, so it is imported only in the worker that runs
the job, never in the web process."""

from __future__ import annotations

from typing import Any

from jobs import registry
from jobs.runner import JobContext

TRAIN_JOB = "experiments.train"


@registry.register(TRAIN_JOB, label="Training", queue="training")
def train(ctx: JobContext) -> dict[str, Any]:
    from experiments.training.job import train as run_training

    return run_training(ctx)
