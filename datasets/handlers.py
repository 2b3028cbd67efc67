"""The `datasets.profile` job type: profile one version, reporting bytes processed as progress."""

from __future__ import annotations

from typing import Any

from datasets import profiles
from datasets.models import DatasetVersion
from datasets.profiler import ProfileError
from jobs import registry
from jobs.runner import JobContext


@registry.register(profiles.JOB_TYPE, label="Dataset profile")
def profile_version(ctx: JobContext) -> dict[str, Any]:
    """Profile the version `params["version_id"]` and store the result on its DatasetProfile row."""
    version_id = int(ctx.params["version_id"])
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        return {"skipped": "the version was deleted"}
    if not profiles.mark_running(version_id, ctx.job.pk):
        return {"skipped": "a newer profiling job took this version over"}
    ctx.log(f"profiling {version} ({version.size:,} bytes of {version.get_format_display()})")
    try:
        data = profiles.compute_profile(version, progress=profiles.ProgressThrottle(ctx.progress))
    except ProfileError as exc:
        profiles.fail_profile(version_id, ctx.job.pk, str(exc))
        raise
    profiles.save_profile(version_id, ctx.job.pk, data)
    ctx.log(
        f"{data['rows']:,} rows, {len(data['columns'])} columns in {data['seconds']} s ({data['mb_per_second']} MB/s)"
    )
    return {
        "dataset": version.dataset.name,
        "version": version.number,
        "rows": data["rows"],
        "columns": len(data["columns"]),
        "seconds": data["seconds"],
        "mb_per_second": data["mb_per_second"],
    }
