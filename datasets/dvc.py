"""The portal as a DVC remote: the write and read path for objects that `dvc push` stores.

DVC addresses every file by the md5 of its bytes, and a directory by the md5 of its manifest (a
JSON list of `{"md5", "relpath"}`, stored as the object `<md5>.dir`). Here each object is an
ordinary content-addressed blob plus a `DvcObject` row naming it in a remote, so the bytes a team
pushes with DVC are stored once, whether they later become a dataset version or not.

The HTTP side (what the `dvc` client sends) is in `datasets/dvc_views.py`; `version_from_dvc`
turns a pushed file or directory into a dataset version with the same inspection as any push.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from datasets import services
from datasets.models import Blob, DatasetVersion, DvcObject
from datasets.storage import get_storage, read_chunks

MD5_RE = re.compile(r"^[0-9a-f]{32}\Z")
# What a `.dvc` file's `md5:` holds: the file's md5, or the directory manifest's md5 plus ".dir".
OID_RE = re.compile(r"^(?P<md5>[0-9a-f]{32})(?P<dir>\.dir)?\Z")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a directory manifest of about a million files


class DigestMismatch(ValueError):
    """The bytes received do not have the md5 their URL names; nothing was stored."""


class DvcObjectNotFound(LookupError):
    pass


class InvalidDvcObject(ValueError):
    """The md5 is malformed, or a directory manifest cannot be turned into a dataset."""


@dataclass(frozen=True)
class Oid:
    md5: str
    is_dir: bool

    def __str__(self) -> str:
        return f"{self.md5}.dir" if self.is_dir else self.md5


def parse_oid(value: str) -> Oid:
    """`0123…ef` or `0123…ef.dir` (as in a `.dvc` file; surrounding space and upper case tolerated)."""
    match = OID_RE.match((value or "").strip().lower())
    if match is None:
        raise InvalidDvcObject(
            f"{value[:80]!r} is not a DVC object id: expected the 32 hex digits of an md5, "
            "followed by '.dir' for a directory (copy the `md5:` line of the .dvc file)."
        )
    return Oid(match["md5"], bool(match["dir"]))


def find_object(remote: str, oid: Oid) -> DvcObject | None:
    return DvcObject.objects.select_related("blob").filter(remote=remote, md5=oid.md5, is_dir=oid.is_dir).first()


def store_object(
    remote: str,
    oid: Oid,
    chunks: Iterable[bytes],
    *,
    pushed_by: Any = None,
    expected_size: int | None = None,
) -> tuple[DvcObject, bool]:
    """Store an object `dvc push` sends; returns (object, created).

    The bytes are staged while hashed, under DATASET_MAX_UPLOAD_BYTES (`UploadTooLarge`), and kept
    only if their md5 is the one in the URL (else `DigestMismatch`): a remote that stored bytes
    under the wrong name would hand them to every later `dvc pull`. Pushing an object the remote
    already has is idempotent. Raises `storage.IncompleteUpload` when the body ends early.
    """
    services.validate_name(remote)
    storage = get_storage()
    staged = storage.stage(chunks, max_bytes=settings.DATASET_MAX_UPLOAD_BYTES, expected_size=expected_size)
    try:
        if staged.md5 != oid.md5:
            raise DigestMismatch(f"The body's md5 is {staged.md5}, not {oid.md5} as the URL says; nothing was stored.")
        existing = find_object(remote, oid)
        if existing is not None:
            return existing, False
        user = pushed_by if getattr(pushed_by, "is_authenticated", False) else None
        try:
            with transaction.atomic():
                # Locking the blob row keeps garbage collection from deleting its file under this push.
                blob = Blob.objects.select_for_update().filter(pk=staged.sha256).first()
                key = storage.commit(staged)
                if blob is None:
                    blob = services.blob_row(staged, key)
                obj = DvcObject.objects.create(remote=remote, md5=oid.md5, is_dir=oid.is_dir, blob=blob, pushed_by=user)
        except IntegrityError:
            # Two clients pushed the same object at once (dvc pushes in parallel jobs); the winner's row stands.
            existing = find_object(remote, oid)
            if existing is None:
                raise
            return existing, False
        return obj, True
    finally:
        storage.discard(staged)  # a no-op once committed (the file has moved)


def _object_for_version(oid: Oid, remote: str | None) -> DvcObject:
    objects = DvcObject.objects.select_related("blob").filter(md5=oid.md5, is_dir=oid.is_dir)
    if remote:
        objects = objects.filter(remote=remote)
    found = objects.order_by("created").first()
    if found is None:
        where = f"the DVC remote {remote!r}" if remote else "any DVC remote of this portal"
        raise DvcObjectNotFound(f"No object {oid} was pushed to {where}: run `dvc push` first.")
    return found


def version_from_dvc(
    dataset_name: str,
    md5: str,
    *,
    remote: str | None = None,
    filename: str = "",
    message: str = "",
    author: Any = None,
    format: str | None = None,
) -> tuple[DatasetVersion, bool]:
    """Make the file (or directory) that `dvc push` stored under `md5` a version of the dataset.

    `md5` is the `md5:` of the `.dvc` file. A file goes through `services.push_version` exactly as
    an upload would (same inspection, same "already have this content" answer); a directory becomes
    a directory dataset: a tar of its files, built as a stream from their blobs, in path order so
    the same directory always gives the same bytes. Returns (version, created).
    """
    services.validate_name(dataset_name)
    oid = parse_oid(md5)
    obj = _object_for_version(oid, remote)
    storage = get_storage()
    if not oid.is_dir:
        handle = storage.open(obj.blob_id)
        with handle:
            return services.push_version(
                dataset_name,
                read_chunks(handle),
                filename=filename or oid.md5,
                message=message,
                author=author,
                expected_size=obj.blob.size,
                format=format,
            )
    members = _directory_members(obj)
    return services.push_version(
        dataset_name,
        _tar_stream(members),
        filename=filename or f"{dataset_name}.tar",
        message=message,
        author=author,
        format=format or "directory",
    )


def _directory_members(manifest_obj: DvcObject) -> list[tuple[str, Blob]]:
    """(relpath, blob) of every file the manifest lists, all of which must be in the same remote."""
    if manifest_obj.blob.size > MAX_MANIFEST_BYTES:
        raise InvalidDvcObject(
            f"The directory manifest {manifest_obj.oid} is larger than {MAX_MANIFEST_BYTES:,} bytes."
        )
    with get_storage().open(manifest_obj.blob_id) as handle:
        raw = handle.read()
    try:
        entries = json.loads(raw)
        pairs = [(str(entry["relpath"]), str(entry["md5"]).lower()) for entry in entries]
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidDvcObject(f"{manifest_obj.oid} is not a DVC directory manifest: {exc}") from None
    wanted = {md5 for _, md5 in pairs}
    found = {
        o.md5: o.blob
        for o in DvcObject.objects.select_related("blob").filter(
            remote=manifest_obj.remote, is_dir=False, md5__in=wanted
        )
    }
    missing = sorted(path for path, md5 in pairs if md5 not in found)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DvcObjectNotFound(
            f"The directory {manifest_obj.oid} lists files that were not pushed to {manifest_obj.remote!r}: {shown}."
        )
    return sorted((path, found[md5]) for path, md5 in pairs)


def _tar_stream(members: list[tuple[str, Blob]]) -> Iterator[bytes]:
    """A POSIX tar of `members`, produced piece by piece (headers from tarfile, bodies read in chunks).

    Member paths are written as the manifest gives them; the dataset inspector refuses absolute
    paths, `..` and the like, so a hostile manifest fails there like a hostile archive would.
    """
    storage = get_storage()
    for path, blob in members:
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = blob.size, 0o644, 0
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        with storage.open(blob.sha256) as handle:
            yield from read_chunks(handle)
        if blob.size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - blob.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)  # the end-of-archive marker


__all__ = [
    "DigestMismatch",
    "DvcObjectNotFound",
    "InvalidDvcObject",
    "Oid",
    "find_object",
    "parse_oid",
    "store_object",
    "version_from_dvc",
]
