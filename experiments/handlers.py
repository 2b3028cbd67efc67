"""Job types of experiments. Training imports TensorFlow, so it is imported only in the worker that runs
the job, never in the web process."""

from __future__ import annotations

from typing import Any

from jobs import registry
from jobs.runner import JobContext

TRAIN_JOB = "experiments.train"
SCRIPT_JOB = "experiments.script"
JOB_TAG = "portal.job_id"  # the run tag naming the training job that made the run


def runs_of_job(job_id: int) -> Any:
    """The runs a training job's attempts made, newest first."""
    from experiments.models import Run, RunTag

    tagged = RunTag.objects.filter(key=JOB_TAG, value=str(job_id)).values("run_id")
    return Run.objects.filter(pk__in=tagged).order_by("-start_time")


def _after_training(job_id: int) -> None:
    from experiments.training.sweeps import after_training_job

    after_training_job(job_id)


@registry.register(TRAIN_JOB, label="Training", queue="training", on_finish=_after_training)
def train(ctx: JobContext) -> dict[str, Any]:
    from experiments.training.job import train as run_training

    return run_training(ctx)


@registry.register(SCRIPT_JOB, label="Training script", queue="training")
def run_script(ctx: JobContext) -> dict[str, Any]:
    from experiments.training.scripts import run_script as run

    return run(ctx)
