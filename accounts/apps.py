from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, roles, API tokens and the audit log: the bottom layer every other app may import."""

    name = "accounts"
    verbose_name = "Accounts and audit"

    def ready(self) -> None:
        from accounts import signals

        signals.connect()
