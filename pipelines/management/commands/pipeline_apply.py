"""`python manage.py pipeline_apply FILE.py [--owner USER]`: save every @pipeline a Python file defines (a new
version when its definition changed) and its schedule. The file is imported, so run only files you trust;
pipelines it defines run steps as their owner."""

from __future__ import annotations

import runpy
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines import services
from pipelines.dsl import PipelineDefinition
from pipelines.spec import SpecError


class Command(BaseCommand):
    help = "Save the pipelines a Python file defines with pipelines.dsl (and their schedules)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--owner", default="admin", help="the user who owns new pipelines (default: admin)")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {options['owner']!r}")
        namespace = runpy.run_path(options["path"])
        found = [v for v in namespace.values() if isinstance(v, PipelineDefinition)]
        if not found:
            raise CommandError(f"{options['path']} defines no @pipeline")
        for definition in found:
            try:
                version, created = services.save_definition(definition.name, definition.spec(), actor=owner)
            except SpecError as exc:
                raise CommandError(f"{definition.name}: {exc}") from None
            pipeline = version.pipeline
            if definition.schedule and not pipeline.schedules.filter(cron=definition.schedule).exists():
                services.create_schedule(pipeline, definition.schedule, actor=owner)
            word = f"saved version {version.number}" if created else f"unchanged (version {version.number})"
            self.stdout.write(f"{definition.name}: {word}" + (f", scheduled {definition.schedule}"
                                                              if definition.schedule else ""))  # fmt: skip
