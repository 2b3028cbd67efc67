from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project package as an app, so its templates, static files and commands are found."""

    name = "mlops_portal"
    label = "portal"
    verbose_name = "MLOps Portal"
