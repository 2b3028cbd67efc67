from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments, rollouts (gates, canary, rollback) and the model server."""

    name = "deployments"

    def ready(self) -> None:
        from deployments import handlers, lineage, registry_page  # noqa: F401  (handlers registers job types)

        lineage.register()
        registry_page.register()
