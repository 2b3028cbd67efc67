from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """Experiments, runs, metrics and artifacts; the MLflow-compatible tracking API; training jobs."""

    name = "experiments"

    def ready(self) -> None:
        from experiments import lineage

        lineage.register()
