"""Reading an upload's body as a stream, for the versions endpoint.

Raw bodies (the recommended way, and what the web page sends) are read from the request in 1 MiB
pieces straight into blob staging. Multipart bodies go through an upload handler that writes the
file part to a temp file in the upload spool, refusing it once it passes the cap; nothing is ever
held whole in memory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser

from datasets.storage import CHUNK_BYTES, TEMP_PREFIX, spool_dir


class UploadTooLargeError(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The upload is too large."

    @classmethod
    def for_limit(cls, limit: int) -> UploadTooLargeError:
        return cls(
            f"The upload is larger than the limit of {limit:,} bytes (DATASET_MAX_UPLOAD_BYTES); nothing was stored."
        )


class StreamParser(BaseParser):
    """Accepts any non-multipart body without reading it: the view streams it from the request itself."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        return {}


def declared_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw.strip():
        return None
    try:
        length = int(raw)
    except ValueError:
        raise exceptions.ParseError(f"Invalid Content-Length {raw!r}.") from None
    if length < 0:
        raise exceptions.ParseError(f"Invalid Content-Length {raw!r}.")
    return length


def refuse_if_declared_too_large(request: HttpRequest) -> None:
    """Answer 413 before reading a byte when the announced size is already over the cap."""
    length = declared_length(request)
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    # A multipart body carries a little framing around the file, so allow for it.
    slack = 64 * 1024 if (request.content_type or "").startswith("multipart/") else 0
    if length is not None and length > limit + slack:
        raise UploadTooLargeError.for_limit(limit)


def raw_body_chunks(request: HttpRequest) -> tuple[Iterator[bytes], int | None]:
    """The body in 1 MiB pieces, and the length it should have (None if the client did not say)."""
    length = declared_length(request)
    stream: Any = request  # Django's request reads the WSGI input up to CONTENT_LENGTH
    if length is None:
        if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise exceptions.ParseError(
                "The request body is empty: send the file as the body, with a Content-Length header."
            )
        # Without a length Django reads nothing; the raw input may be read to its end only when the
        # server guarantees it ends with the body (granian and gunicorn do, the development server does not).
        if not request.META.get("wsgi.input_terminated"):
            raise exceptions.ParseError("Send the file with a Content-Length header.")
        stream = request.META["wsgi.input"]
    elif length == 0:
        raise exceptions.ParseError("The request body is empty: send the file as the body.")

    def chunks() -> Iterator[bytes]:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk

    return chunks(), length


class CappedUploadedFile(UploadedFile):
    def __init__(self, file: Any, name: str, size: int) -> None:
        super().__init__(file, name, "application/octet-stream", size)

    def temporary_file_path(self) -> str:
        return str(self.file.name)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.close()


class CappedUploadHandler(FileUploadHandler):
    """Multipart file parts go to a temp file in the upload spool; over the cap, the upload is refused."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        temp_dir = spool_dir()
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.file = tempfile.NamedTemporaryFile(prefix=TEMP_PREFIX, suffix=".multipart", dir=temp_dir)  # noqa: SIM115
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        if self.received > limit:
            self.file.close()  # a NamedTemporaryFile deletes itself
            raise UploadTooLargeError.for_limit(limit)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.flush()
        self.file.seek(0)
        return CappedUploadedFile(self.file, self.file_name or "upload", file_size)

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            with contextlib.suppress(FileNotFoundError, OSError):
                self.file.close()


def uploaded_file_chunks(upload: UploadedFile) -> Iterator[bytes]:
    upload.seek(0)
    while chunk := upload.read(CHUNK_BYTES):
        yield chunk


__all__ = [
    "CappedUploadHandler",
    "StreamParser",
    "UploadTooLargeError",
    "raw_body_chunks",
    "refuse_if_declared_too_large",
    "uploaded_file_chunks",
]
