"""`python manage.py dataset_push NAME PATH -m MESSAGE [--user USERNAME]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from datasets import services
from datasets.inspect import DatasetInputError
from datasets.storage import IncompleteUpload, UploadTooLarge, read_chunks


class Command(BaseCommand):
    help = "Push a file (CSV, Parquet, JSON Lines, or a zip/tar of files) as the next version of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The dataset; created, owned by --user, if it does not exist")
        parser.add_argument("path", type=Path, help="The file to push")
        parser.add_argument("-m", "--message", default="", help="What changed in this version")
        parser.add_argument("--user", help="The author (a user name); without it the push is recorded as 'system'")
        parser.add_argument("--format", choices=["csv", "parquet", "jsonl", "directory"], help="Override detection")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        author = None
        if options["user"]:
            author = get_user_model().objects.filter(username=options["user"]).first()
            if author is None:
                raise CommandError(f"No user named {options['user']!r}.")
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        try:
            with open(path, "rb") as handle:
                version, created = services.push_version(
                    options["name"],
                    read_chunks(handle),
                    filename=path.name,
                    message=options["message"],
                    author=author,
                    format=options["format"],
                )
        except (services.InvalidDatasetName, DatasetInputError, UploadTooLarge, IncompleteUpload) as exc:
            raise CommandError(str(exc)) from None
        facts = f"sha256 {version.blob_id[:12]}…, {filesizeformat(version.size)}"
        if version.row_count is not None:
            facts += f", {version.row_count:,} rows"
        elif version.manifest:
            facts += f", {len(version.manifest):,} files"
        if created:
            self.stdout.write(self.style.SUCCESS(f"Pushed {version.dataset.name} version {version.number} ({facts})."))
        else:
            self.stdout.write(
                f"{version.dataset.name} version {version.number} already has this content ({facts}); "
                "no new version was created."
            )
