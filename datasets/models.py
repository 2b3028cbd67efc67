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


class DvcObject(models.Model):
    """A file, or a directory manifest (`.dir`), that `dvc push` stored in the portal's DVC remote.

    DVC addresses objects by the md5 of their bytes; the bytes themselves are an ordinary blob, so a
    file pushed with DVC and the same file pushed as a dataset version are stored once. `remote` is
    the name in the remote's URL (`/dvc/<remote>/`): a namespace, so one remote's existence checks
    never answer for another's objects. The row keeps the blob from garbage collection.
    """

    remote = models.CharField(max_length=100, validators=[name_validator])
    md5 = models.CharField(max_length=32)
    is_dir = models.BooleanField(default=False, help_text="A DVC directory manifest (`<md5>.dir`)")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="dvc_objects")
    pushed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["remote", "md5", "is_dir"], name="dvc_object_unique_oid"),
        ]
        indexes = [models.Index(fields=["md5"], name="dvc_object_md5_idx")]

    def __str__(self) -> str:
        return f"{self.remote}:{self.oid}"

    @property
    def oid(self) -> str:
        """The object's name as DVC writes it: the md5, with `.dir` for a directory manifest."""
        return f"{self.md5}.dir" if self.is_dir else self.md5


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


class ProfileStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    UNSUPPORTED = "unsupported", "Not profiled"


class DatasetProfile(models.Model):
    """The statistical profile of one version, computed by the `datasets.profile` job.

    `data` holds the last complete profile (see `datasets.profiler.profile_file`); `job` is the job that
    computes (or last computed) it, whose row the pages poll for progress. A re-run keeps the previous
    `data` until the new profile replaces it. Directory datasets are not profiled (`unsupported`).
    """

    version = models.OneToOneField(DatasetVersion, on_delete=models.CASCADE, primary_key=True, related_name="profile")
    status = models.CharField(max_length=16, choices=ProfileStatus.choices, default=ProfileStatus.QUEUED)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    data = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.version_id}"

    @property
    def is_live(self) -> bool:
        """A job is (supposed to be) working on it: the page polls while this holds."""
        if self.status not in (ProfileStatus.QUEUED, ProfileStatus.RUNNING):
            return False
        return self.job is not None and not self.job.is_finished

    @property
    def display_status(self) -> str:
        """What the page says: a queued or running profile whose job ended badly has failed."""
        if self.status in (ProfileStatus.QUEUED, ProfileStatus.RUNNING) and (self.job is None or self.job.is_finished):
            return ProfileStatus.FAILED
        return self.status
