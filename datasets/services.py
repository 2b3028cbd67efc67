"""The write path for datasets: push a version, delete a version, collect garbage.

Views, the REST API and the management commands all call these functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.services import record_audit
from datasets.dependants import Dependant, dependants_of, hidden_summary
from datasets.inspect import DatasetInputError, inspect_file
from datasets.models import NAME_RE, Blob, Dataset, DatasetVersion, DvcObject
from datasets.profiles import start_profile
from datasets.storage import StagedBlob, get_storage
from mlops_portal.events import publish

logger = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600


class InvalidDatasetName(ValueError):
    pass


class DatasetInUse(Exception):
    """The version has dependants; `dependants` lists those the actor may see, `hidden` counts the others."""

    def __init__(self, version: DatasetVersion, dependants: list[Dependant]) -> None:
        self.version = version
        self.dependants = [d for d in dependants if not d.hidden]
        self.hidden = len(dependants) - len(self.dependants)
        listed = ", ".join(str(d) for d in self.dependants[:10])
        if len(self.dependants) > 10:
            listed += f" and {len(self.dependants) - 10} more"
        if self.hidden:  # counted, never named: their names are not the actor's to read
            listed = f"{listed} and {hidden_summary(dependants)}" if listed else hidden_summary(dependants)
        super().__init__(f"{version} cannot be deleted: {len(dependants)} dependant(s) use it: {listed}.")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidDatasetName(
            f"Invalid dataset name {name[:120]!r}: use 1 to 100 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


def blob_row(staged: Any, key: str) -> Blob:
    """The Blob row for bytes just committed to storage, created unless a concurrent push of the same
    bytes (into another dataset, or by DVC) created it first: then theirs, locked like the rest."""
    try:
        with transaction.atomic():  # a savepoint, so the losing insert does not spoil the push
            return Blob.objects.create(sha256=staged.sha256, md5=staged.md5, size=staged.size, storage_key=key)
    except IntegrityError:
        return Blob.objects.select_for_update().get(pk=staged.sha256)


def push_version(
    dataset_name: str,
    stream: Iterable[bytes],
    *,
    filename: str,
    message: str = "",
    author: Any = None,
    expected_size: int | None = None,
    format: str | None = None,
) -> tuple[DatasetVersion, bool]:
    """Store `stream` as the next version of the dataset (created, owned by `author`, if missing).

    Returns (version, created). Content the dataset already holds creates nothing and returns the
    existing version with created=False. The bytes are staged, hashed and inspected before anything
    is written to the database; on any error (size cap, interrupted upload, bad content) the staged
    file is removed and no row exists, so nothing partial is ever stored or listed.
    """
    validate_name(dataset_name)
    storage = get_storage()
    staged = storage.stage(stream, max_bytes=settings.DATASET_MAX_UPLOAD_BYTES, expected_size=expected_size)
    try:
        existing = _existing_version(dataset_name, staged.sha256)
        if existing is not None:
            storage.discard(staged)
            return existing, False
        inspection = inspect_file(staged.path, filename, format=format)
        return _record_version(dataset_name, staged, inspection, filename=filename, message=message, author=author)
    finally:
        storage.discard(staged)  # a no-op once committed (the file has moved)


def _existing_version(dataset_name: str, sha256: str) -> DatasetVersion | None:
    return (
        DatasetVersion.objects.select_related("dataset", "blob", "author")
        .filter(dataset__name=dataset_name, blob_id=sha256)
        .first()
    )


def _record_version(
    dataset_name: str, staged: StagedBlob, inspection: Any, *, filename: str, message: str, author: Any
) -> tuple[DatasetVersion, bool]:
    storage = get_storage()
    user = author if getattr(author, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.select_for_update().get_or_create(name=dataset_name, defaults={"owner": user})
            # Decided again under the dataset's lock: a concurrent push of the same bytes may have won.
            existing = _existing_version(dataset_name, staged.sha256)
            if existing is not None:
                return existing, False
            # Locking the blob row keeps garbage collection from deleting its file under this push.
            blob = Blob.objects.select_for_update().filter(pk=staged.sha256).first()
            key = storage.commit(staged)
            if blob is None:
                blob = blob_row(staged, key)
            parent = dataset.versions.order_by("-number").first()
            dataset.last_number += 1
            dataset.save(update_fields=["last_number"])
            version = DatasetVersion.objects.create(
                dataset=dataset,
                number=dataset.last_number,
                blob=blob,
                size=staged.size,
                format=inspection.format,
                filename=filename[:255],
                row_count=inspection.row_count,
                schema=inspection.schema,
                manifest=inspection.manifest,
                author=user,
                message=message,
                parent=parent,
            )
            record_audit(
                user,
                "dataset.push",
                version,
                {"dataset": dataset.name, "number": version.number, "sha256": blob.sha256, "size": blob.size},
            )
            # The profiling job's message leaves only once this transaction commits (jobs.services.submit_job).
            start_profile(version, requested_by=user)
            publish("dataset.version_created", version_id=version.pk, dataset_id=dataset.pk)
    except IntegrityError:
        # Two pushes of the same bytes raced past each other's checks; the winner's version is the answer.
        existing = _existing_version(dataset_name, staged.sha256)
        if existing is None:
            raise
        return existing, False
    # A blob file committed by a transaction that then rolled back is an orphan; collect_garbage removes it.
    return version, True


def delete_version(version: DatasetVersion, *, actor: Any) -> None:
    """Delete a version nothing depends on. Its blob stays until `collect_garbage` finds it unreferenced."""
    dependants = dependants_of(version, actor if getattr(actor, "is_authenticated", False) else None)
    if dependants:
        raise DatasetInUse(version, dependants)
    with transaction.atomic():
        record_audit(
            actor,
            "dataset.delete_version",
            version,
            {"dataset": version.dataset.name, "number": version.number, "sha256": version.blob_id},
        )
        version.delete()


@dataclass
class GarbageReport:
    dry_run: bool
    blobs: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.blobs) + len(self.orphan_files) + len(self.temp_files)


def collect_garbage(*, dry_run: bool = False) -> GarbageReport:
    """Delete blobs no version or DVC object references, blob files without a row, and temp files of dead uploads.

    Files without a row, temp files and (in S3) incomplete multipart uploads are spared for an hour:
    they may belong to a push in progress.
    With `dry_run`, only report what would be deleted.
    """
    storage = get_storage()
    report = GarbageReport(dry_run=dry_run)
    for blob in Blob.objects.filter(versions__isnull=True, dvc_objects__isnull=True).only("sha256", "size"):
        if dry_run:
            report.blobs.append(blob.sha256)
            report.bytes += blob.size
            continue
        with transaction.atomic():
            locked = Blob.objects.select_for_update().filter(pk=blob.pk).first()
            if (
                locked is None
                or DatasetVersion.objects.filter(blob_id=blob.pk).exists()
                or DvcObject.objects.filter(blob_id=blob.pk).exists()
            ):
                continue  # a push (of a version or a DVC object) reused it meanwhile
            storage.delete(blob.sha256)
            locked.delete()
        report.blobs.append(blob.sha256)
        report.bytes += blob.size
    known = set(Blob.objects.values_list("sha256", flat=True))
    young = time.time() - STALE_TEMP_SECONDS
    for stored in storage.list_blobs():
        if stored.sha256 in known or stored.modified > young or stored.sha256 in report.blobs:
            continue
        report.orphan_files.append(stored.key)
        report.bytes += stored.size
        if not dry_run:
            storage.delete(stored.sha256)
    for path in storage.stale_temp_files(STALE_TEMP_SECONDS):
        report.temp_files.append(path.name)
        try:
            report.bytes += path.stat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
    # Object stores keep the parts of an upload whose process died (invisible, but stored) until aborted.
    report.temp_files.extend(storage.abort_stale_uploads(STALE_TEMP_SECONDS, dry_run=dry_run))
    if not dry_run and report.count:
        record_audit(
            None,
            "dataset.collect_garbage",
            None,
            {"blobs": len(report.blobs), "files": len(report.orphan_files) + len(report.temp_files)},
        )
        logger.info("dataset garbage collected", extra={"blobs": len(report.blobs), "bytes": report.bytes})
    return report


__all__ = [
    "DatasetInUse",
    "DatasetInputError",
    "GarbageReport",
    "InvalidDatasetName",
    "collect_garbage",
    "delete_version",
    "push_version",
    "validate_name",
]
