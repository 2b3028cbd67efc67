"""The write path of training: submit a training job (the page, the API, sweeps and pipelines call this)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from rest_framework.exceptions import ValidationError

from datasets.models import DatasetFormat, DatasetVersion
from datasets.storage import UploadTooLarge, stage_to_file
from experiments.handlers import SCRIPT_JOB, TRAIN_JOB
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
    max_attempts: int | None = None,
    tags: dict[str, str] | None = None,
) -> Job:
    """Validate what the caller asked for and queue the job on the `training` queue; its run is created
    when a worker starts it, with `tags` added to the run's own. `max_attempts` (default JOB_MAX_ATTEMPTS)
    bounds the attempts after a worker died mid-training."""
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
        max_attempts=max_attempts,
    )  # fmt: skip


SCRIPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,250}\.py$")
MAX_ARGS, MAX_ARG_CHARS = 64, 1000


def allowed_script(relative: str) -> tuple[Path, Path] | None:
    """The script a relative path names under one of TRAINING_SCRIPT_DIRS (the first that has it) and that
    directory, or None. Symlinks are resolved before the check, so nothing outside the directories runs."""
    if not SCRIPT_NAME.match(relative) or ".." in relative.split("/") or "//" in relative:
        return None
    for root in settings.TRAINING_SCRIPT_DIRS:
        path = (root / relative).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path, root
    return None


def allowed_scripts(limit: int = 200) -> list[str]:
    """The scripts editors may run by path, for the form: relative paths, sorted."""
    found: set[str] = set()
    for root in settings.TRAINING_SCRIPT_DIRS:
        if root.is_dir():
            for path in sorted(root.rglob("*.py"))[:limit]:
                relative = path.relative_to(root).as_posix()
                if allowed_script(relative) is not None and not path.name.startswith("_"):
                    found.add(relative)
    return sorted(found)[:limit]


def store_script(upload: UploadedFile) -> str:
    """Stream an uploaded script into the artifact store under its SHA-256 (capped at SCRIPT_MAX_BYTES);
    returns the stored file's name. Nothing is kept when the upload is refused."""
    name = Path(upload.name or "").name
    if not SCRIPT_NAME.match(name) or "/" in name:
        raise ValidationError({"file": ["a Python file (name.py: letters, digits, '_', '-', '.')"]})
    limit = settings.SCRIPT_MAX_BYTES
    if upload.size and upload.size > limit:
        raise ValidationError({"file": [f"the script is {upload.size} bytes; the limit is {limit} (SCRIPT_MAX_BYTES)"]})
    folder = settings.ARTIFACT_ROOT / "scripts"
    folder.mkdir(parents=True, exist_ok=True)
    try:  # the datasets' streamed, hashed and capped upload; the temp file is gone on any error
        staged = stage_to_file(upload.chunks(), folder, max_bytes=limit)
    except UploadTooLarge:
        raise ValidationError({"file": [f"the script is over the limit of {limit} bytes (SCRIPT_MAX_BYTES)"]}) from None
    stored = f"{staged.sha256}.py"
    os.replace(staged.path, folder / stored)
    return stored


def start_script_job(
    experiment: Experiment,
    *,
    requested_by: Any,
    upload: UploadedFile | None = None,
    path: str = "",
    args: list[str] | None = None,
    run_name: str = "",
    timeout_seconds: int | None = None,
    memory_mb: int | None = None,
) -> Job:
    """Queue a user's training script (uploaded, or by path under TRAINING_SCRIPT_DIRS) on the `training`
    queue; experiments/training/scripts.py runs it. Each problem is a ValidationError naming its field."""
    if (upload is None) == (not path):
        raise ValidationError({"file": ["upload a script or give the path of an allowed one, not both"]})
    if path and allowed_script(path) is None:
        raise ValidationError({"path": ["no such script under the allowed directories (TRAINING_SCRIPT_DIRS)"]})
    args = args or []
    if not isinstance(args, list) or len(args) > MAX_ARGS or not all(isinstance(a, str) for a in args):
        raise ValidationError({"args": [f"a list of at most {MAX_ARGS} strings"]})
    if any(len(a) > MAX_ARG_CHARS or "\x00" in a for a in args):
        raise ValidationError({"args": [f"each argument at most {MAX_ARG_CHARS} characters, without NUL"]})
    memory = memory_mb or settings.SCRIPT_MEMORY_MB
    if not 64 <= memory <= 65_536:
        raise ValidationError({"memory_mb": ["from 64 to 65536"]})
    if not getattr(requested_by, "is_authenticated", False):
        raise ValidationError({"requested_by": ["a script job runs as a signed-in user"]})
    stored = store_script(upload) if upload is not None else ""
    return submit_job(
        SCRIPT_JOB,
        params={
            "experiment_id": experiment.pk, "name": Path(upload.name).name if upload is not None else path,
            "upload": stored, "path": path, "args": args, "run_name": run_name[:250], "memory_mb": memory,
        },
        requested_by=requested_by,
        timeout_seconds=timeout_seconds or settings.SCRIPT_TIMEOUT_SECONDS,
    )  # fmt: skip
