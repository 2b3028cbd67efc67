from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Registered models, versions, aliases and the registry timeline."""

    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from registry import lineage

        lineage.register()
