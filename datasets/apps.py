from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Datasets and their immutable, content-addressed versions, profiles, diffs and lineage."""

    name = "datasets"

    def ready(self) -> None:
        from datasets import handlers  # noqa: F401  (registers the `datasets.profile` job type)
