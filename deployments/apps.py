from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments, rollouts (gates, canary, rollback) and the model server."""

    name = "deployments"

    def ready(self) -> None:
        from deployments import lineage

        lineage.register()
