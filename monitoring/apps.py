from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Latency, accuracy and drift of deployments, alerts, and the portal's own /metrics."""

    name = "monitoring"

    def ready(self) -> None:
        from monitoring import canary

        canary.register()
