from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Background jobs: one database row per long-running operation, run by Celery workers."""

    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from jobs import handlers  # noqa: F401  (registers the built-in job types)
