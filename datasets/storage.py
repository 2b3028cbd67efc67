"""Content-addressed blob storage for dataset versions.

Bytes are addressed by their SHA-256. An upload is written to a temp file in the store's own `tmp/`
directory while sha256 and md5 are computed and the size cap is enforced, so nothing is ever read
whole into memory; only once the caller has inspected the staged file and decided to keep it does
`commit` move it to `sha256/ab/cdef…` with an atomic rename (same filesystem, so readers see the
whole blob or none of it). Any failure before that removes the temp file.

Two backends implement `BlobStorage`, chosen by `DATASET_STORAGE`: `LocalBlobStorage` (files under
`ARTIFACT_ROOT/datasets`, the default) and `datasets.storage_s3.S3BlobStorage` (an S3-compatible
bucket). Both stage uploads the same way, in a local spool file: inspection reads a staged file
several times and seeks in it (a zip's central directory, a Parquet footer), which a local file does
cheaply, and a refused upload then never reaches the bucket at all. Blob keys (`Blob.storage_key`)
are relative to the backend's root, so they are the same in both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings

CHUNK_BYTES = 1024 * 1024
TEMP_PREFIX = "upload-"
_HEX = frozenset("0123456789abcdef")


class UploadTooLarge(Exception):
    """More bytes than the cap arrived; nothing was kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The upload is larger than the limit of {limit:,} bytes (DATASET_MAX_UPLOAD_BYTES); nothing was stored."
        )


class IncompleteUpload(Exception):
    """The upload ended early (the client disconnected, or sent less than it announced); nothing was kept."""


@dataclass
class StagedBlob:
    """A fully received upload in a temp file, with its digests, not yet part of the store."""

    path: Path
    sha256: str
    md5: str
    size: int


@dataclass(frozen=True)
class StoredFile:
    key: str
    sha256: str
    size: int
    modified: float


class BlobStorage(Protocol):
    def stage(self, chunks: Iterable[bytes], *, max_bytes: int, expected_size: int | None = None) -> StagedBlob: ...

    def commit(self, staged: StagedBlob) -> str: ...

    def discard(self, staged: StagedBlob) -> None: ...

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StagedBlob: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def delete(self, sha256: str) -> None: ...

    def key_for(self, sha256: str) -> str: ...

    def list_blobs(self) -> Iterator[StoredFile]: ...

    def stale_temp_files(self, older_than_seconds: float) -> list[Path]: ...

    def abort_stale_uploads(self, older_than_seconds: float, *, dry_run: bool = False) -> list[str]: ...


def blob_key(sha256: str) -> str:
    """`sha256/ab/cdef…`: where a blob lives, relative to the backend's root (a directory or a bucket prefix)."""
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"sha256/{sha256[:2]}/{sha256[2:]}"


class LocalBlobStorage:
    """Blobs as files under `root` (by default `ARTIFACT_ROOT/datasets`)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else Path(settings.ARTIFACT_ROOT) / "datasets"

    @property
    def temp_dir(self) -> Path:
        return self.root / "tmp"  # on the same filesystem as the blobs, so commit is a rename

    def key_for(self, sha256: str) -> str:
        return blob_key(sha256)

    def path_for(self, sha256: str) -> Path:
        return self.root / self.key_for(sha256)

    def stage(self, chunks: Iterable[bytes], *, max_bytes: int, expected_size: int | None = None) -> StagedBlob:
        return stage_to_file(chunks, self.temp_dir, max_bytes=max_bytes, expected_size=expected_size)

    def commit(self, staged: StagedBlob) -> str:
        """Move the staged file to its content address (or drop it if that content is already there)."""
        target = self.path_for(staged.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Same bytes already stored. Touch it so garbage collection, which spares young files that no
            # row references yet, does not remove it while this push's transaction is still open.
            os.utime(target)
            self.discard(staged)
        else:
            os.chmod(staged.path, 0o644)
            os.replace(staged.path, target)
        return self.key_for(staged.sha256)

    def discard(self, staged: StagedBlob) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged.path)

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StagedBlob:
        staged = self.stage(chunks, max_bytes=max_bytes)
        self.commit(staged)
        return staged

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path_for(sha256), "rb")  # the caller (e.g. FileResponse) closes it

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    def delete(self, sha256: str) -> None:
        path = self.path_for(sha256)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only succeeds when empty

    def list_blobs(self) -> Iterator[StoredFile]:
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            if not prefix.is_dir() or len(prefix.name) != 2:
                continue
            for entry in sorted(prefix.iterdir()):
                sha = prefix.name + entry.name
                if len(sha) != 64 or not set(sha) <= _HEX or not entry.is_file():
                    continue
                stat = entry.stat()
                yield StoredFile(self.key_for(sha), sha, stat.st_size, stat.st_mtime)

    def stale_temp_files(self, older_than_seconds: float) -> list[Path]:
        return stale_temp_files_in(self.temp_dir, older_than_seconds)

    def abort_stale_uploads(self, older_than_seconds: float, *, dry_run: bool = False) -> list[str]:
        return []  # a local upload is a temp file, which `stale_temp_files` already finds


def spool_dir() -> Path:
    """Where uploads are received and inspected before they join the store, whatever the backend."""
    return Path(settings.ARTIFACT_ROOT) / "datasets" / "tmp"


def stage_to_file(
    chunks: Iterable[bytes], temp_dir: Path, *, max_bytes: int, expected_size: int | None = None
) -> StagedBlob:
    """Receive `chunks` into a temp file in `temp_dir`, hashing as they arrive.

    Raises `UploadTooLarge` as soon as more than `max_bytes` arrived, and `IncompleteUpload` when
    the source fails or yields fewer than `expected_size` bytes; the temp file is gone either way.
    """
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=temp_dir)
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge(max_bytes)
                    sha256.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
            except (UploadTooLarge, IncompleteUpload):
                raise
            except OSError as exc:  # the client went away mid-body (servers raise OSError subclasses)
                raise IncompleteUpload(f"The upload was interrupted after {size:,} bytes: {exc}") from exc
            if expected_size is not None and size != expected_size:
                raise IncompleteUpload(
                    f"The upload ended after {size:,} of the {expected_size:,} bytes announced by Content-Length."
                )
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return StagedBlob(Path(name), sha256.hexdigest(), md5.hexdigest(), size)


def stale_temp_files_in(temp_dir: Path, older_than_seconds: float) -> list[Path]:
    """Temp files untouched for that long: uploads whose process died before cleaning up."""
    if not temp_dir.is_dir():
        return []
    cutoff = time.time() - older_than_seconds
    stale = []
    for entry in sorted(temp_dir.iterdir()):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file() and entry.name.startswith(TEMP_PREFIX) and entry.stat().st_mtime < cutoff:
                stale.append(entry)
    return stale


def get_storage() -> BlobStorage:
    """The backend `DATASET_STORAGE` names, built per call so tests can move the root or the bucket."""
    if settings.DATASET_STORAGE == "s3":
        from datasets.storage_s3 import S3BlobStorage  # boto3 is imported only when S3 is configured

        return S3BlobStorage.from_settings()
    return LocalBlobStorage()


def read_chunks(handle: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk
