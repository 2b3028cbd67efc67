"""Dataset blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), when `DATASET_STORAGE=s3`.

The write path: an upload is staged in a local spool file exactly as for the local backend (hashed
while it arrives, capped by DATASET_MAX_UPLOAD_BYTES) and inspected there; only `commit` sends it
to the bucket, as a multipart upload in `DATASET_S3_PART_BYTES` parts straight to its
content-addressed key `<prefix>sha256/ab/cdef…`. S3 makes a multipart object visible only when the
upload completes, so readers see the whole blob or none of it (as the local backend's rename
gives), and any failure aborts the upload. A refused upload (too large, bad content, the wrong md5
for DVC) never reaches the bucket. Each part carries its Content-MD5, so the server checks every
byte it keeps. Uploads whose process died midway are aborted by garbage collection after an hour.

The read path: `open` returns a seekable file over ranged GETs (`S3Reader`), so downloads, DVC
range requests, tar streams and the profiler (pyarrow reads CSV and JSON Lines sequentially through
it, and seeks to a Parquet file's footer and column chunks) all read the object in pieces, never
whole, and never need a local copy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from datasets.storage import (
    CHUNK_BYTES,
    StagedBlob,
    StoredFile,
    blob_key,
    spool_dir,
    stage_to_file,
    stale_temp_files_in,
)

MAX_SINGLE_COPY = 5 * 1024**3  # CopyObject's limit; larger objects are copied in parts
FIRST_WINDOW = 256 * 1024
MAX_WINDOW = 16 * 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    addressing_style: str = "auto"
    part_bytes: int = 8 * 1024 * 1024


_clients: dict[S3Config, Any] = {}


def client_for(config: S3Config) -> Any:
    """One boto3 client per configuration (clients are thread-safe and slow to build)."""
    client = _clients.get(config)
    if client is None:
        style = config.addressing_style
        if style == "auto" and config.endpoint_url:
            style = "path"  # MinIO and most self-hosted servers have no per-bucket host names
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url or None,
            region_name=config.region or None,
            # Empty means boto3's own chain: AWS_* variables, a profile, an instance or pod role.
            aws_access_key_id=config.access_key_id or None,
            aws_secret_access_key=config.secret_access_key or None,
            config=Config(
                s3={"addressing_style": style},
                retries={"max_attempts": 5, "mode": "standard"},
                # Only where S3 requires them: several S3-compatible servers refuse the CRC32 checksums
                # botocore adds by default. Every part is sent with its Content-MD5 instead.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        _clients[config] = client
    return client


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3BlobStorage:
    """Blobs as objects under `prefix` in `bucket`; uploads spooled under `ARTIFACT_ROOT/datasets/tmp`."""

    def __init__(self, config: S3Config, *, temp_dir: Path | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.client = client_for(config)
        self.temp_dir = temp_dir if temp_dir is not None else spool_dir()

    @classmethod
    def from_settings(cls) -> S3BlobStorage:
        prefix = settings.DATASET_S3_PREFIX.strip("/")
        return cls(
            S3Config(
                bucket=settings.DATASET_S3_BUCKET,
                prefix=f"{prefix}/" if prefix else "",
                endpoint_url=settings.DATASET_S3_ENDPOINT_URL,
                region=settings.DATASET_S3_REGION,
                access_key_id=settings.DATASET_S3_ACCESS_KEY_ID,
                secret_access_key=settings.DATASET_S3_SECRET_ACCESS_KEY,
                addressing_style=settings.DATASET_S3_ADDRESSING_STYLE,
                part_bytes=settings.DATASET_S3_PART_BYTES,
            )
        )

    def key_for(self, sha256: str) -> str:
        return blob_key(sha256)

    def object_key(self, sha256: str) -> str:
        return self.prefix + blob_key(sha256)

    # Writing ---------------------------------------------------------------------------------------

    def stage(self, chunks: Iterable[bytes], *, max_bytes: int, expected_size: int | None = None) -> StagedBlob:
        return stage_to_file(chunks, self.temp_dir, max_bytes=max_bytes, expected_size=expected_size)

    def commit(self, staged: StagedBlob) -> str:
        """Upload the staged file to its content address (or refresh the object if that content is there)."""
        key = self.object_key(staged.sha256)
        if self._head(key) is not None:
            # Same bytes already stored. Rewrite its timestamp so garbage collection, which spares young
            # objects no row references yet, does not remove it while this push's transaction is open.
            self._touch(key, staged)
        else:
            self._upload(staged, key)
        self.discard(staged)
        return self.key_for(staged.sha256)

    def discard(self, staged: StagedBlob) -> None:
        staged.path.unlink(missing_ok=True)

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StagedBlob:
        staged = self.stage(chunks, max_bytes=max_bytes)
        try:
            self.commit(staged)
        finally:
            self.discard(staged)
        return staged

    def _metadata(self, staged: StagedBlob) -> dict[str, str]:
        return {"sha256": staged.sha256, "md5": staged.md5}

    def _upload(self, staged: StagedBlob, key: str) -> None:
        part_bytes = self.config.part_bytes
        with open(staged.path, "rb") as source:
            if staged.size <= part_bytes:
                data = source.read()
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentMD5=_md5_b64(data),
                    ContentType="application/octet-stream",
                    Metadata=self._metadata(staged),
                )
                return
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType="application/octet-stream", Metadata=self._metadata(staged)
            )["UploadId"]
            try:
                parts = []
                number = 1
                while data := source.read(part_bytes):
                    answer = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ContentMD5=_md5_b64(data),
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    number += 1
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                # Nothing half-written may stay behind: the parts uploaded so far are dropped with it. If
                # even that fails (S3 unreachable), garbage collection aborts it later (abort_stale_uploads).
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise

    def _touch(self, key: str, staged: StagedBlob) -> None:
        source = {"Bucket": self.bucket, "Key": key}
        extra = {"Metadata": self._metadata(staged), "MetadataDirective": "REPLACE"}
        if staged.size <= MAX_SINGLE_COPY:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source, **extra)
        else:  # pragma: no cover - needs a 5 GiB object
            self.client.copy(source, self.bucket, key, ExtraArgs=extra)

    # Reading ---------------------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def open(self, sha256: str) -> BinaryIO:
        key = self.object_key(sha256)
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"s3://{self.bucket}/{key}")
        raw = S3Reader(self.client, self.bucket, key, int(head["ContentLength"]), etag=head.get("ETag"))
        return io.BufferedReader(raw, buffer_size=CHUNK_BYTES)  # type: ignore[return-value]

    def exists(self, sha256: str) -> bool:
        return self._head(self.object_key(sha256)) is not None

    def size(self, sha256: str) -> int:
        head = self._head(self.object_key(sha256))
        if head is None:
            raise FileNotFoundError(f"s3://{self.bucket}/{self.object_key(sha256)}")
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(sha256))  # idempotent in S3

    def list_blobs(self) -> Iterator[StoredFile]:
        base = self.prefix + "sha256/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for item in page.get("Contents", []):
                parts = item["Key"][len(base) :].split("/")
                if len(parts) != 2 or len(parts[0]) != 2:
                    continue
                sha = parts[0] + parts[1]
                try:
                    key = blob_key(sha)
                except ValueError:
                    continue  # not ours
                yield StoredFile(key, sha, int(item["Size"]), item["LastModified"].timestamp())

    # Garbage ---------------------------------------------------------------------------------------

    def stale_temp_files(self, older_than_seconds: float) -> list[Path]:
        return stale_temp_files_in(self.temp_dir, older_than_seconds)

    def abort_stale_uploads(self, older_than_seconds: float, *, dry_run: bool = False) -> list[str]:
        """Abort multipart uploads started that long ago (their process died); returns their keys.

        Incomplete uploads are invisible to listings but are stored, and billed, until aborted.
        """
        cutoff = time.time() - older_than_seconds
        aborted = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "sha256/"):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() >= cutoff:
                    continue
                aborted.append(f"multipart:{upload['Key'][len(self.prefix) :]}")
                if not dry_run:
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if not _missing(exc) and exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                            raise
        return aborted


class S3Reader(io.RawIOBase):
    """A seekable, read-only file over an S3 object, read with ranged GETs.

    Reading goes on through one streamed GET for a window of bytes; the window doubles (up to 16 MiB)
    while reading stays sequential, so a download is a handful of requests, and starts small again
    after a seek, so pyarrow's jumps to a Parquet footer or column chunk fetch little more than they
    need. A seek inside the current position costs nothing. `If-Match` on the ETag makes a read fail
    rather than mix the bytes of two objects (blobs never change, but a bucket is not ours alone).
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int, *, etag: str | None = None) -> None:
        super().__init__()
        self.client, self.bucket, self.key, self.size, self.etag = client, bucket, key, size, etag
        self.name = f"s3://{bucket}/{key}"
        self._pos = 0
        self._body: Any = None
        self._body_end = 0
        self._window = FIRST_WINDOW
        self.requests = 0  # how many GETs it took (tests and curiosity)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop()
            self._window = FIRST_WINDOW
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if wanted == 0 or self._pos >= self.size:
            return 0
        if self._body is None:
            end = min(self.size, self._pos + max(wanted, self._window))
            extra = {"IfMatch": self.etag} if self.etag else {}
            answer = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self._pos}-{end - 1}", **extra
            )
            self.requests += 1
            self._body, self._body_end = answer["Body"], end
            self._window = min(self._window * 2, MAX_WINDOW)
        data = self._body.read(min(wanted, self._body_end - self._pos))
        if not data:
            self._drop()
            raise OSError(f"{self.name} ended at byte {self._pos} of {self.size}")
        count = len(data)
        buffer[:count] = data
        self._pos += count
        if self._pos >= self._body_end:
            self._drop()
        return count

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()
