"""`python manage.py dataset_gc [--dry-run]`: delete dataset blobs no version references."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.template.defaultfilters import filesizeformat

from datasets.services import collect_garbage


class Command(BaseCommand):
    help = (
        "Delete dataset blobs that no version references, blob files without a database row and temp files "
        "of uploads that died (both after an hour). --dry-run lists them without deleting."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted; delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        report = collect_garbage(dry_run=options["dry_run"])
        verb = "Would delete" if report.dry_run else "Deleted"
        for sha256 in report.blobs:
            self.stdout.write(f"{verb} blob sha256:{sha256}")
        for key in report.orphan_files:
            self.stdout.write(f"{verb} unreferenced file {key}")
        for name in report.temp_files:
            self.stdout.write(f"{verb} stale temp file {name}")
        summary = (
            f"{verb} {len(report.blobs)} blob(s), {len(report.orphan_files)} unreferenced file(s) and "
            f"{len(report.temp_files)} temp file(s): {filesizeformat(report.bytes)}."
        )
        if not report.count:
            summary = "Nothing to collect."
        self.stdout.write(self.style.SUCCESS(summary) if report.count and not report.dry_run else summary)
