"""Datasets, their immutable versions, and the content-addressed blobs that hold the bytes."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# Names appear in URLs, in `dataset_push NAME` and later in DVC paths: keep them slug-safe.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}\Z")
name_validator = RegexValidator(
    NAME_RE,
    "A dataset name is 1 to 100 letters, digits, '-' or '_', starting with a letter or digit.",
)


class Dataset(models.Model):
    """A named series of immutable versions. Visible to every signed-in user; editors push to it."""

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets"
    )
    # The highest version number ever given out, so a deleted version's number is never reused.
    last_number = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Blob(models.Model):
    """Bytes stored once, addressed by their SHA-256. md5 is kept because DVC addresses files by it."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    md5 = models.CharField(max_length=32, db_index=True)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=200, help_text="Where the storage backend keeps the bytes")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sha256:{self.sha256[:12]}…"


class DatasetFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
    JSONL = "jsonl", "JSON Lines"
    DIRECTORY = "directory", "Directory (zip or tar)"


class DatasetVersion(models.Model):
    """One immutable version of a dataset: its bytes (a blob) and what inspecting them found.

    There is no update path: a version is created by `datasets.services.push_version` and can only be
    deleted. A dataset holds given content once, so pushing identical bytes again returns the
    existing version instead of creating one.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="versions")
    size = models.BigIntegerField()
    format = models.CharField(max_length=16, choices=DatasetFormat.choices)
    filename = models.CharField(max_length=255, blank=True, help_text="The name of the file as pushed")
    row_count = models.BigIntegerField(null=True, blank=True, help_text="None for directory datasets")
    schema = models.JSONField(default=list, blank=True, help_text="[{name, type}], in column order")
    manifest = models.JSONField(default=list, blank=True, help_text="Directory datasets: [{path, size, sha256}]")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_versions"
    )
    message = models.TextField(blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_unique_number"),
            models.UniqueConstraint(fields=["dataset", "blob"], name="dataset_version_unique_content"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def sha256(self) -> str:
        return self.blob_id

    @property
    def md5(self) -> str:
        return self.blob.md5

    def user_can(self, user: Any, action: str) -> bool:
        """Everyone with a role reads; deleting is for the dataset's owner, the version's author and admins."""
        if action in ("view", "change"):
            return True
        from accounts.services import has_role

        uid = getattr(user, "pk", None)
        return uid is not None and (uid in (self.dataset.owner_id, self.author_id) or has_role(user, "admin"))
