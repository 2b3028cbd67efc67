from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Datasets and their immutable, content-addressed versions, profiles, diffs and lineage."""

    name = "datasets"
