from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    """DAG pipelines, schedules and triggers: the top of the lifecycle."""

    name = "pipelines"

    def ready(self) -> None:
        from pipelines import handlers

        handlers.connect()
