from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments, rollouts (gates, canary, rollback) and the model server."""

    name = "deployments"

    def ready(self) -> None:
        from deployments import handlers, lineage  # noqa: F401  (handlers registers the job types)

        lineage.register()
