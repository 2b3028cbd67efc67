from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The home page: counts, recent activity and charts across every app, so it sits above them all."""

    name = "dashboard"
