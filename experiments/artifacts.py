"""The artifact store: plain files under `settings.ARTIFACT_ROOT`, addressed by relative paths.

Layout (the URIs clients see are `mlflow-artifacts:/<relative path>`):
- `<experiment_id>/<run_id>/artifacts/<file path>` for a run's artifacts;
- `<experiment_id>/models/<model_id>/artifacts/<file path>` for a logged model's.

The first segment is always the experiment id, which is what permissions are checked against. Every
path a client sends goes through `safe_relative_path`, and every filesystem access through `resolve`,
which follows symlinks and refuses anything that ends up outside that experiment's directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from django.conf import settings

from experiments.mlflow_api.common import MlflowError, invalid, not_found

ARTIFACT_SCHEME = "mlflow-artifacts"
# Uploads land in a temp file of this name next to their target, then move into place. The prefix
# is reserved: clients can neither address nor list such files.
TEMP_PREFIX = ".mlops-upload-"
MAX_DECODE_ROUNDS = 10
_EXPERIMENT_SEGMENT = re.compile(r"^(0|[1-9][0-9]{0,18})$")
# Characters that are never part of an artifact name: they change meaning somewhere between the
# client, a proxy and the filesystem (fragment, path parameters, query, Windows separators).
_FORBIDDEN = {"\\": "backslashes", "#": "'#'", ";": "';'", "?": "'?'"}


class ArtifactPathError(MlflowError):
    """A path a client sent that must not reach the filesystem (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "INVALID_PARAMETER_VALUE")


class ArtifactTooLarge(MlflowError):
    """An upload over `settings.MAX_UPLOAD_BYTES` (HTTP 400: a retry would fail the same way)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Artifact is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES).", "INVALID_PARAMETER_VALUE"
        )


def artifact_root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


# Paths -------------------------------------------------------------------------------------------


def safe_relative_path(raw: str) -> str:
    """`raw` percent-decoded to a fixed point, or `ArtifactPathError` if it could escape or mislead.

    Decoding repeatedly means `%252e%252e` is judged as the `..` it becomes, whichever layer would
    have decoded it. The result is a fixed point, so calling this again on it changes nothing.
    """
    if not isinstance(raw, str):
        raise ArtifactPathError(f"Invalid path {raw!r}: must be a string")
    path = raw
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    else:
        raise ArtifactPathError(f"Invalid path {raw!r}: too many levels of percent-encoding")
    if not path:
        raise ArtifactPathError("Invalid path: it is empty")
    if any(unicodedata.category(char) == "Cc" for char in path):  # NUL, newlines, escapes, DEL…
        raise ArtifactPathError(f"Invalid path {raw!r}: control characters are not allowed")
    for char, name in _FORBIDDEN.items():
        if char in path:
            raise ArtifactPathError(f"Invalid path {raw!r}: {name} are not allowed")
    if path.startswith("/"):
        raise ArtifactPathError(f"Invalid path {raw!r}: absolute paths are not allowed")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ArtifactPathError(f"Invalid path {raw!r}: empty, '.' and '..' segments are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise ArtifactPathError(f"Invalid path {raw!r}: names starting with {TEMP_PREFIX!r} are reserved")
    return path


def experiment_id_of(relative: str) -> int:
    """The experiment a relative path belongs to: its first segment, a canonical integer."""
    first = relative.split("/", 1)[0]
    if not _EXPERIMENT_SEGMENT.match(first) or int(first) >= 2**63:
        raise ArtifactPathError(f"Invalid path {relative!r}: it must start with an experiment id, like '1/…'")
    return int(first)


def relative_of_uri(uri: str) -> str:
    """`mlflow-artifacts:/1/abc/artifacts` → `1/abc/artifacts` (the portal's own URIs only)."""
    parsed = urlparse(uri)
    if parsed.scheme != ARTIFACT_SCHEME or parsed.netloc:
        raise invalid(f"Artifact location {uri!r} is not served by this portal")
    return safe_relative_path(parsed.path.lstrip("/"))


def join(*parts: str | None) -> str:
    """Join relative paths, skipping empty parts (no validation: pass the result to the functions below)."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _inside(path: str, base: str) -> bool:
    return os.path.commonpath([path, base]) == base


def resolve(relative: str) -> Path:
    """The real filesystem path of `relative`, verified (after following symlinks) to stay inside the
    root, and inside the directory of the experiment that its first segment names."""
    relative = safe_relative_path(relative)
    root = os.path.realpath(artifact_root())
    segments = relative.split("/")
    experiment_dir = os.path.join(root, segments[0])
    real = os.path.realpath(os.path.join(root, *segments))
    if not (_inside(real, root) and _inside(real, experiment_dir)):
        raise ArtifactPathError(f"Invalid path {relative!r}: it leads outside the artifact store")
    return Path(real)


# Operations --------------------------------------------------------------------------------------


def list_dir(relative: str) -> list[dict[str, Any]]:
    """The entries of a directory in MLflow's FileInfo shape, sorted by name; [] if it is not a directory.

    `path` is relative to the listed directory; `file_size` is given for files only.
    """
    directory = resolve(relative)
    if not directory.is_dir():
        return []
    experiment_dir = os.path.join(os.path.realpath(artifact_root()), relative.split("/", 1)[0])
    entries: list[dict[str, Any]] = []
    with os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.is_symlink() and not _inside(os.path.realpath(entry.path), experiment_dir):
                    continue  # never reveal even the size of something outside the store
                if entry.is_dir():
                    entries.append({"path": entry.name, "is_dir": True})
                else:
                    entries.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
            except OSError:
                continue  # vanished meanwhile, or a dangling link
    return sorted(entries, key=lambda e: e["path"])


def save_stream(relative: str, chunks: Iterable[bytes], max_bytes: int | None = None) -> int:
    """Write `chunks` to `relative` atomically and return the size.

    The bytes go to a temp file in the target's directory, then `os.replace` moves it into place: a
    reader sees the old file or the new one, never half of one, and a retried PUT simply replaces it.
    More than `max_bytes` (default `settings.MAX_UPLOAD_BYTES`) is refused and leaves nothing behind.
    """
    limit = settings.MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    target = resolve(relative)
    if target.is_dir():
        raise ArtifactPathError(f"Invalid path {relative!r}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ArtifactPathError(f"Invalid path {relative!r}: a parent of it is a file") from None
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise ArtifactTooLarge(limit)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return written


def open_file(relative: str) -> BinaryIO:
    """The artifact opened for reading; 404 if it does not exist, 400 for a directory."""
    target = resolve(relative)
    if target.is_dir():
        raise invalid(f"Artifact path refers to a directory, not a file: '{relative}'")
    try:
        return open(target, "rb")  # FileResponse closes it
    except (FileNotFoundError, NotADirectoryError):
        raise not_found(f"No such artifact: '{relative}'") from None


def delete(relative: str) -> None:
    """Delete a file or a whole directory tree. Deleting what is not there succeeds (retries are harmless)."""
    target = resolve(relative)
    parent, _, name = relative.rpartition("/")
    # A symlink is removed itself, never what it points to.
    link = (resolve(parent) if parent else Path(os.path.realpath(artifact_root()))) / name
    if link.is_symlink():
        link.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            target.unlink()
