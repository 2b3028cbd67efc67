from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """Experiments, runs, metrics and artifacts; the MLflow-compatible tracking API; training jobs."""

    name = "experiments"

    def ready(self) -> None:
        from experiments import handlers, lineage  # noqa: F401  (handlers registers the training job)

        lineage.register()
