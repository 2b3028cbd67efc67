"""Read-side helpers shared by the pages and the API."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.urls import reverse

from datasets.models import Dataset, DatasetProfile, DatasetVersion, ProfileStatus


def dataset_list() -> QuerySet[Dataset]:
    """Datasets with their version count and latest version's facts, in one query."""
    latest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-number")
    return (
        Dataset.objects.select_related("owner")
        .annotate(
            version_count=Count("versions", distinct=True),
            latest_number=Subquery(latest.values("number")[:1]),
            latest_size=Subquery(latest.values("size")[:1]),
            latest_row_count=Subquery(latest.values("row_count")[:1]),
            latest_format=Subquery(latest.values("format")[:1]),
            updated=Subquery(latest.values("created")[:1]),
        )
        .order_by("name")
    )


def version_list(dataset: Dataset) -> QuerySet[DatasetVersion]:
    return (
        DatasetVersion.objects.filter(dataset=dataset)
        .select_related("dataset", "blob", "author", "parent")
        .order_by("-number")
    )


def profile_of(version: DatasetVersion) -> DatasetProfile | None:
    """The version's profile row with its job (one query), or None for versions pushed before profiling."""
    return DatasetProfile.objects.select_related("job").filter(version=version).first()


def profile_state(profile: DatasetProfile | None) -> dict[str, Any]:
    """What the API and the pages say about a profile: its status, its job's progress, its data."""
    if profile is None:
        return {"status": "missing", "job": None, "computed_at": None, "error": "", "profile": None}
    job = profile.job
    error = profile.error
    if not error and job is not None and job.is_finished and profile.display_status == ProfileStatus.FAILED:
        error = job.error.strip().splitlines()[-1] if job.error.strip() else f"the profiling job {job.status}"
    return {
        "status": profile.display_status,
        "job": None
        if job is None
        else {
            "id": job.pk,
            "status": job.status,
            "progress": job.progress,
            "message": job.progress_message,
            "url": reverse("jobs:detail", kwargs={"pk": job.pk}),
        },
        "computed_at": profile.computed_at.isoformat() if profile.computed_at else None,
        "error": error,
        "profile": profile.data,
    }


def diff_pair(name: str, a: str | None, b: str | None) -> tuple[DatasetVersion, DatasetVersion]:
    """The two versions a diff compares: `b` defaults to the latest, `a` to b's parent.

    Http404 for a version that does not exist, ValueError (with a message for people) for a bad number
    or a first version compared with nothing.
    """
    versions = DatasetVersion.objects.select_related("dataset", "parent")
    try:
        number_a = int(a) if a else None
        number_b = int(b) if b else None
    except ValueError:
        raise ValueError("`a` and `b` are version numbers.") from None
    if number_b is None:
        version_b = versions.filter(dataset__name=name).order_by("-number").first()
    else:
        version_b = versions.filter(dataset__name=name, number=number_b).first()
    if version_b is None:
        raise Http404(f"{name} has no version {number_b or ''}".strip())
    if number_a is None:
        if version_b.parent is None:
            raise ValueError(f"v{version_b.number} has no parent: say which version to compare it with (a).")
        return version_b.parent, version_b
    version_a = versions.filter(dataset__name=name, number=number_a).first()
    if version_a is None:
        raise Http404(f"{name} has no version {number_a}")
    return version_a, version_b
