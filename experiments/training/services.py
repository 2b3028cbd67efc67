"""The write path of training: submit a training job (the page, the API, sweeps and pipelines call this)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from datasets.models import DatasetFormat, DatasetVersion
from experiments.handlers import TRAIN_JOB
from experiments.models import Experiment
from experiments.training import Trainer, get_trainer, trainers, validate_params
from jobs.models import Job
from jobs.services import submit_job


def check_training(
    dataset_version: DatasetVersion, *, target: str, trainer: str, params: dict[str, Any] | None, seed: int
) -> tuple[type[Trainer], dict[str, Any]]:
    """The trainer and its parameters with defaults filled in; each problem a ValidationError naming its
    field, before anything is queued."""
    found = get_trainer(trainer)
    if found is None:
        raise ValidationError({"trainer": [f"one of {', '.join(sorted(trainers()))}"]})
    try:
        clean = validate_params(found, params or {})
    except ValidationError as exc:
        raise ValidationError({"params": exc.detail}) from None
    if dataset_version.format == DatasetFormat.DIRECTORY:
        raise ValidationError({"version": ["a directory dataset has no columns to train on"]})
    columns = [c["name"] for c in dataset_version.schema]
    if columns and target not in columns:
        raise ValidationError({"target": [f"{dataset_version} has no column {target!r} ({', '.join(columns)})"]})
    if not 0 <= seed < 2**31:
        raise ValidationError({"seed": ["a whole number from 0 to 2147483647"]})
    return found, clean


def start_training_job(
    experiment: Experiment,
    *,
    dataset_version: DatasetVersion,
    target: str,
    trainer: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    run_name: str = "",
    requested_by: Any,
    timeout_seconds: int | None = None,
    tags: dict[str, str] | None = None,
) -> Job:
    """Validate what the caller asked for and queue the job on the `training` queue; its run is created
    when a worker starts it, with `tags` added to the run's own."""
    found, clean = check_training(dataset_version, target=target, trainer=trainer, params=params, seed=seed)
    user = requested_by.get_username() if getattr(requested_by, "is_authenticated", False) else ""
    return submit_job(
        TRAIN_JOB,
        params={
            "experiment_id": experiment.pk, "dataset_version_id": dataset_version.pk, "target": target,
            "trainer": found.name, "params": clean, "seed": seed, "run_name": run_name[:250], "user": user,
            "tags": tags or {},
        },
        requested_by=requested_by,
        timeout_seconds=timeout_seconds,
    )  # fmt: skip
