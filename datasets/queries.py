"""Read-side helpers shared by the pages and the API."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery

from datasets.models import Dataset, DatasetVersion


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
