"""Dataset tests store blobs under a fresh ARTIFACT_ROOT each and can stand in for higher apps' dependants.

Modules that use the `blob_backend` fixture (`pytestmark = pytest.mark.usefixtures("blob_backend")`)
run every test twice: against the local filesystem and against an S3-compatible server (moto's
server mode on a free local port, one per test session, a fresh bucket per test). `stored_files`
lists whatever the configured backend holds, so the same assertions hold for both.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from datasets.dependants import Dependant, register_provider, unregister_provider

S3_PREFIX = "portal"


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT / "datasets"


def stored_files(store: Path) -> list[str]:
    """Every file in the blob store, temp files included: empty after any refused upload.

    With the S3 backend: the bucket's objects and unfinished multipart uploads under the prefix (keys
    relative to it), and the local spool's temp files.
    """
    local = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) if store.exists() else []
    if django_settings.DATASET_STORAGE != "s3":
        return local
    return sorted(local + s3_keys())


def s3_keys() -> list[str]:
    from datasets.storage import get_storage

    storage: Any = get_storage()
    client, bucket, prefix = storage.client, storage.bucket, storage.prefix
    keys = [
        item["Key"][len(prefix) :]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return keys + [f"multipart:{u['Key'][len(prefix) :]}" for u in uploads]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A local S3-compatible server (moto) for the whole session; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, settings: Any) -> str:
    """Switch the dataset storage to a fresh bucket on the local S3 server."""
    import boto3

    bucket = f"datasets-{uuid.uuid4().hex[:12]}"
    settings.DATASET_STORAGE = "s3"
    settings.DATASET_S3_BUCKET = bucket
    settings.DATASET_S3_PREFIX = S3_PREFIX
    settings.DATASET_S3_ENDPOINT_URL = s3_server
    settings.DATASET_S3_REGION = "us-east-1"
    settings.DATASET_S3_ACCESS_KEY_ID = "testing"
    settings.DATASET_S3_SECRET_ACCESS_KEY = "testing"
    settings.DATASET_S3_ADDRESSING_STYLE = "auto"
    settings.DATASET_S3_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part, so a few MiB make a multipart upload
    boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def blob_backend(request: pytest.FixtureRequest, store: Path) -> str:
    """Run the test against both storage backends (`-k s3` or `-k local` picks one)."""
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
    return str(request.param)


def chunks_of(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    stream = io.BytesIO(data)
    while chunk := stream.read(size):
        yield chunk


@pytest.fixture
def dependants() -> Iterator[Callable[..., None]]:
    """Pretend a higher app uses versions: `dependants(version_pk, Dependant(...), ...)`."""
    table: dict[int, list[Dependant]] = {}

    def provider(version: Any) -> list[Dependant]:
        return table.get(version.pk, [])

    register_provider("tests.fake", provider)

    def add(version_pk: int, *items: Dependant) -> None:
        table.setdefault(version_pk, []).extend(items)

    yield add
    unregister_provider("tests.fake")
