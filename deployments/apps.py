from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments, rollouts (gates, canary, rollback) and the model server."""

    name = "deployments"
