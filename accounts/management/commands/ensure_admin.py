"""python manage.py ensure_admin: create the first admin user if it does not exist yet."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.services import ensure_admin


class Command(BaseCommand):
    help = "Create the admin user (PORTAL_ADMIN_USER, PORTAL_ADMIN_PASSWORD) unless it exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("PORTAL_ADMIN_USER", "admin"))
        parser.add_argument("--email", default=os.environ.get("PORTAL_ADMIN_EMAIL", ""))

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("PORTAL_ADMIN_PASSWORD") or None
        user, created, generated = ensure_admin(options["username"], password, options["email"])
        if created and not generated:
            self.stdout.write(
                self.style.SUCCESS(f"Created admin user {user.username!r} (password from PORTAL_ADMIN_PASSWORD).")
            )
        elif generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created admin user {user.username!r} with password {generated!r} "
                    "(shown only now; set PORTAL_ADMIN_PASSWORD to choose it)."
                )
            )
        else:
            self.stdout.write(f"Admin user {user.get_username()!r} already exists.")
