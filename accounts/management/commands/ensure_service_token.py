"""python manage.py ensure_service_token USERNAME --secret-file PATH [--name NAME]

Registers a token whose secret an operator (or the docker-compose bootstrap) already wrote to a file, so
that a machine client such as Prometheus can read the same file and send `Authorization: Bearer <secret>`.
Unlike create_api_token, the secret is never printed and running the command again changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, Profile, Role
from accounts.services import TOKEN_PREFIX, hash_token, record_audit

# The prefix plus 32 characters: far below what create_api_token issues (4 + 43), far above guessable.
MIN_SECRET_LENGTH = 36


def read_secret(path: Path) -> str:
    """The secret in `path`, surrounding whitespace removed; CommandError when it is unusable."""
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise CommandError(f"cannot read the token secret from {str(path)!r}: {exc.strerror or exc}") from None
    if not secret.startswith(TOKEN_PREFIX):
        raise CommandError(f"the token secret in {str(path)!r} must start with {TOKEN_PREFIX!r}")
    if len(secret) < MIN_SECRET_LENGTH:
        raise CommandError(
            f"the token secret in {str(path)!r} is {len(secret)} characters long; it must be at least "
            f"{MIN_SECRET_LENGTH}. Generate one with: "
            "python3 -c \"import secrets; print('mlp_' + secrets.token_urlsafe(32))\""
        )
    # The Authorization header parser splits on whitespace, so such a secret could never authenticate.
    if any(ch.isspace() for ch in secret) or not secret.isprintable():
        raise CommandError(f"the token secret in {str(path)!r} must not contain whitespace or control characters")
    return secret


class Command(BaseCommand):
    help = (
        "Make the secret in --secret-file an active API token of USERNAME (created as a viewer if missing). "
        "Other active tokens of USERNAME with the same --name are revoked, so replacing the file rotates the "
        "token. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--secret-file", required=True, type=Path, help="file holding the token secret")
        parser.add_argument("--name", default="service token", help="the token's name (default: %(default)s)")

    def handle(self, *args: Any, **options: Any) -> None:
        secret = read_secret(options["secret_file"])
        username: str = options["username"]
        name: str = options["name"][:100]
        digest = hash_token(secret)
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username).first()
            if user is None:
                # A service account never logs in with a password; it has only this token.
                user = User(username=username)
                user.set_unusable_password()
                user.save()
                Profile.objects.create(user=user, role=Role.VIEWER)
                record_audit(None, "user.create_service_account", user, {"role": Role.VIEWER})
                self.stdout.write(f"Created service account {username!r} (role viewer).")
            elif not user.is_active:
                raise CommandError(f"user {username!r} is deactivated; reactivate it in the admin first")
            else:
                Profile.objects.get_or_create(user=user, defaults={"role": Role.VIEWER})

            token = ApiToken.objects.select_for_update().filter(digest=digest).first()
            if token is not None and token.user_id != user.pk:
                raise CommandError(
                    f"this secret is already a token of another user ({token.user.get_username()!r}); "
                    "use a different secret"
                )
            if token is None:
                token = ApiToken.objects.create(user=user, name=name, prefix=secret[:12], digest=digest)
                record_audit(None, "token.create", token, {"name": name, "owner": username, "source": "secret file"})
                self.stdout.write(f"Registered token {token.prefix}… for {username!r}.")
            elif not token.is_active:
                token.revoked_at = None
                token.expires_at = None
                token.save(update_fields=["revoked_at", "expires_at"])
                record_audit(None, "token.reactivate", token, {"name": token.name, "owner": username})
                self.stdout.write(f"Reactivated token {token.prefix}… for {username!r}.")
            else:
                self.stdout.write(f"Token {token.prefix}… of {username!r} is already active.")

            # The file is the one source of truth for this named token: an older secret is rotated out.
            now = timezone.now()
            for old in ApiToken.objects.filter(user=user, name=token.name, revoked_at__isnull=True).exclude(
                pk=token.pk
            ):
                old.revoked_at = now
                old.save(update_fields=["revoked_at"])
                record_audit(None, "token.revoke", old, {"name": old.name, "owner": username, "reason": "rotated"})
                self.stdout.write(f"Revoked the previous token {old.prefix}… of {username!r}.")
