"""python manage.py ensure_service_token USERNAME --secret-file PATH [--name NAME]

Registers a token whose secret an operator (or the docker-compose bootstrap) already wrote to a file, so
that a machine client such as Prometheus can read the same file and send `Authorization: Bearer <secret>`.
Unlike create_api_token, the secret is never printed and running the command again changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import TOKEN_PREFIX, ServiceTokenRefused, ensure_service_token

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
        try:
            notes = ensure_service_token(options["username"], secret, options["name"])
        except ServiceTokenRefused as exc:
            raise CommandError(str(exc)) from None
        for note in notes:
            self.stdout.write(note)
