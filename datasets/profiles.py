"""The write path for profiles: start a profiling job, run it, store the result.

`push_version` calls `start_profile` inside its transaction, so the profile row and its job row exist
with the version and the job's message leaves only after commit (jobs.services.submit_job). The
version page and `POST /api/v1/datasets/{name}/versions/{n}/profile` call `request_profile` to run it
again. The `datasets.profile` job (datasets/handlers.py) calls `compute_profile`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from datasets.inspect import Limits
from datasets.models import DatasetFormat, DatasetProfile, DatasetVersion, ProfileStatus
from datasets.profiler import FileSource, ProfileError, ProfileOptions, profile_file
from datasets.storage import LocalBlobStorage, get_storage
from jobs.services import submit_job

logger = logging.getLogger(__name__)

JOB_TYPE = "datasets.profile"
MISSING_MESSAGE = "The stored bytes of this version are missing; tell an administrator."
UNSUPPORTED_MESSAGE = "Directory datasets (zip or tar archives) are not profiled: only CSV, Parquet and JSON Lines."


def profile_options() -> ProfileOptions:
    # Blocks as large as inspection's, so every row that inspection accepted fits in one block.
    return ProfileOptions(block_bytes=Limits.from_settings().block_bytes)


def start_profile(version: DatasetVersion, *, requested_by: Any = None) -> DatasetProfile:
    """Create the version's profile row and submit its job (sent after the caller's transaction commits)."""
    with transaction.atomic():
        if version.format == DatasetFormat.DIRECTORY:
            profile, _ = DatasetProfile.objects.update_or_create(
                version=version, defaults={"status": ProfileStatus.UNSUPPORTED, "error": UNSUPPORTED_MESSAGE}
            )
            return profile
        job = submit_job(JOB_TYPE, params={"version_id": version.pk}, requested_by=requested_by)
        profile, _ = DatasetProfile.objects.update_or_create(
            version=version, defaults={"status": ProfileStatus.QUEUED, "job": job, "error": ""}
        )
    return profile


def request_profile(version: DatasetVersion, *, requested_by: Any) -> tuple[DatasetProfile, bool]:
    """Run the profile again, unless a job is already on it. Returns (profile, started)."""
    with transaction.atomic():
        # Lock only the profile row (the job is a nullable join, which PostgreSQL will not lock).
        profile = (
            DatasetProfile.objects.select_for_update(of=("self",)).select_related("job").filter(version=version).first()
        )
        if profile is not None and profile.is_live:
            return profile, False
        return start_profile(version, requested_by=requested_by), version.format != DatasetFormat.DIRECTORY


def compute_profile(
    version: DatasetVersion,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    options: ProfileOptions | None = None,
) -> dict[str, Any]:
    """Profile the version's stored bytes (no database writes: the job and synchronous diffs share it)."""
    if version.format == DatasetFormat.DIRECTORY:
        raise ProfileError(UNSUPPORTED_MESSAGE)
    storage = get_storage()
    source: Path | FileSource
    if isinstance(storage, LocalBlobStorage):
        source = storage.path_for(version.blob_id)
        if not source.is_file():
            raise ProfileError(MISSING_MESSAGE)
    else:
        # An object store: every pass reads the object through ranged GETs, in blocks, never whole.
        try:
            size = storage.size(version.blob_id)
        except FileNotFoundError:
            raise ProfileError(MISSING_MESSAGE) from None
        sha256 = version.blob_id
        source = FileSource(lambda: storage.open(sha256), size, storage.key_for(sha256))
    return profile_file(
        source, version.format, schema=version.schema, options=options or profile_options(), progress=progress
    )


def mark_running(version_id: int, job_id: int) -> bool:
    """The job started; False if the profile row is gone or now belongs to another job."""
    return bool(
        DatasetProfile.objects.filter(version_id=version_id, job_id=job_id).update(
            status=ProfileStatus.RUNNING, error=""
        )
    )


def save_profile(version_id: int, job_id: int | None, data: dict[str, Any]) -> bool:
    """Store a finished profile, unless a newer job has taken the row over meanwhile."""
    rows = DatasetProfile.objects.filter(version_id=version_id)
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    return bool(rows.update(status=ProfileStatus.READY, data=data, error="", computed_at=timezone.now()))


def fail_profile(version_id: int, job_id: int | None, error: str) -> None:
    rows = DatasetProfile.objects.filter(version_id=version_id)
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    rows.update(status=ProfileStatus.FAILED, error=error[-2000:])


class ProgressThrottle:
    """Calls `report(pct, message)` when the percentage moves or a second has passed, not for every block."""

    def __init__(self, report: Callable[[float, str], None], interval: float = 1.0) -> None:
        self.report = report
        self.interval = interval
        self.last_pct = -1
        self.last_time = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        pct = int(100 * done / total) if total else 100
        now = time.monotonic()
        if pct == self.last_pct and now - self.last_time < self.interval:
            return
        self.last_pct, self.last_time = pct, now
        self.report(min(pct, 99), message)  # 100 % is the job's: it sets it when the profile is stored
