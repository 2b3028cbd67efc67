"""What only the S3 backend does: multipart uploads, aborting them, ranged reads, collecting objects.

The tests shared with the local backend (storage, push, API, DVC remote, profiling, commands) run
against both through the `blob_backend` fixture; these run against moto's S3 server only.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets import profiles, services
from datasets.models import Blob
from datasets.profiler import profile_file
from datasets.services import collect_garbage, delete_version
from datasets.storage import get_storage
from datasets.storage_s3 import S3BlobStorage, S3Reader
from tests.datasets.conftest import S3_PREFIX, chunks_of, s3_keys, stored_files
from tests.datasets.factories import csv_rows, push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("s3_bucket")]

MiB = 1024 * 1024
BIG = os.urandom(11 * MiB)  # three parts of 5 MiB


def s3() -> S3BlobStorage:
    storage = get_storage()
    assert isinstance(storage, S3BlobStorage)
    return storage


def test_it_is_chosen_by_settings_and_keys_live_under_the_prefix(s3_bucket: str) -> None:
    storage = s3()
    staged = storage.put_stream(chunks_of(b"a,b\n1,2\n"), max_bytes=100)
    key = f"{S3_PREFIX}/sha256/{staged.sha256[:2]}/{staged.sha256[2:]}"
    head = storage.client.head_object(Bucket=s3_bucket, Key=key)
    assert head["Metadata"] == {"sha256": staged.sha256, "md5": staged.md5}
    assert storage.key_for(staged.sha256) == key.removeprefix(f"{S3_PREFIX}/")  # Blob.storage_key is backend-relative


def test_a_blob_bigger_than_a_part_is_uploaded_in_parts(s3_bucket: str, store: Path) -> None:
    storage = s3()
    staged = storage.put_stream(chunks_of(BIG, MiB), max_bytes=100 * MiB)
    assert staged.sha256 == hashlib.sha256(BIG).hexdigest()
    head = storage.client.head_object(Bucket=s3_bucket, Key=storage.object_key(staged.sha256))
    assert head["ETag"].strip('"').endswith("-3")  # S3 names a multipart object's ETag after its part count
    with storage.open(staged.sha256) as handle:
        assert handle.read() == BIG
    assert stored_files(store) == [storage.key_for(staged.sha256)]  # the spool file is gone


def test_a_failure_midway_through_a_multipart_upload_aborts_it_and_leaves_nothing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3()
    real = storage.client.upload_part
    calls: list[int] = []

    def flaky(**kwargs: Any) -> Any:
        calls.append(kwargs["PartNumber"])
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("the connection to S3 dropped")
        return real(**kwargs)

    monkeypatch.setattr(storage.client, "upload_part", flaky)
    staged = storage.stage(chunks_of(BIG, MiB), max_bytes=100 * MiB)
    with pytest.raises(ConnectionResetError):
        storage.commit(staged)
    storage.discard(staged)
    assert calls == [1, 2]
    assert stored_files(store) == []  # no object, no unfinished multipart upload, no spool file


def test_a_push_whose_upload_fails_stores_no_row_and_no_object(
    editor: Any, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3()

    def refused(**kwargs: Any) -> Any:
        raise ConnectionResetError("the connection to S3 dropped")

    monkeypatch.setattr(storage.client, "put_object", refused)
    with pytest.raises(ConnectionResetError):
        push(author=editor)
    assert stored_files(store) == [] and not Blob.objects.exists()


def test_refused_content_never_reaches_the_bucket(editor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = s3()
    writes: list[str] = []
    for method in ("put_object", "create_multipart_upload", "upload_part"):
        monkeypatch.setattr(storage.client, method, lambda _m=method, **kw: writes.append(_m))
    with pytest.raises(services.DatasetInputError):
        services.push_version("bad", chunks_of(b"a,b\n1,2\n3\n"), filename="ragged.csv", author=editor)
    assert writes == []


def test_the_reader_streams_sequential_reads_in_few_requests_and_seeks_anywhere() -> None:
    storage = s3()
    staged = storage.put_stream(chunks_of(BIG, MiB), max_bytes=100 * MiB)
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage.object_key(staged.sha256))
    reader = S3Reader(storage.client, storage.bucket, storage.object_key(staged.sha256), len(BIG), etag=head["ETag"])
    got = bytearray()
    while piece := reader.read(4096):
        got += piece
    assert got == BIG
    assert reader.requests <= 8  # windows of 256 KiB doubling to 16 MiB, not one GET per read
    reader.seek(-10, io.SEEK_END)
    assert reader.read() == BIG[-10:]
    reader.seek(1234)
    assert (reader.read(5), reader.tell()) == (BIG[1234:1239], 1239)
    reader.close()


def test_a_missing_object_is_file_not_found_and_its_download_a_404(editor: Any, viewer_client: Any) -> None:
    version = push(author=editor)
    s3().delete(version.blob_id)
    with pytest.raises(FileNotFoundError):
        s3().open(version.blob_id)
    assert viewer_client.get(f"/api/v1/datasets/iris/versions/{version.number}/download").status_code == 404


def test_a_parquet_blob_is_profiled_straight_from_the_bucket(editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table({"x": list(range(5000)), "label": [f"l{i % 7}" for i in range(5000)]})
    pq.write_table(table, path, row_group_size=1000)
    version, _ = services.push_version("pq", chunks_of(path.read_bytes()), filename="t.parquet", author=editor)
    from_bucket = profiles.compute_profile(version)
    local = profile_file(path, "parquet", schema=version.schema, options=profiles.profile_options())
    for key in ("seconds", "mb_per_second"):
        from_bucket.pop(key), local.pop(key)
    assert from_bucket == local and from_bucket["rows"] == 5000


def test_garbage_collection_deletes_objects_and_aborts_dead_multipart_uploads(
    editor: Any, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3()
    kept = push(author=editor)
    dropped = push(data=csv_rows(3), author=editor)
    delete_version(dropped, actor=editor)
    orphan = storage.put_stream(chunks_of(b"no row for me"), max_bytes=100)

    report = collect_garbage()  # the orphan is young: it may belong to a push in progress
    assert (report.blobs, report.orphan_files, report.temp_files) == ([dropped.sha256], [], [])
    assert sorted(s3_keys()) == sorted([storage.key_for(kept.sha256), storage.key_for(orphan.sha256)])

    # A process died mid-upload. (moto dates every multipart upload 2010, so its "young" case cannot be
    # shown here; the age check is the one the orphan objects go through, against S3's `Initiated`.)
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key=storage.object_key("f" * 64))
    later = time.time() + 7200
    monkeypatch.setattr(services.time, "time", lambda: later)
    dry = collect_garbage(dry_run=True)
    assert dry.orphan_files == [storage.key_for(orphan.sha256)]
    assert dry.temp_files == [f"multipart:{storage.key_for('f' * 64)}"]
    assert len(s3_keys()) == 3  # nothing deleted

    report = collect_garbage()
    assert (report.orphan_files, report.temp_files) == (dry.orphan_files, dry.temp_files)
    assert stored_files(store) == [storage.key_for(kept.sha256)]
    assert collect_garbage().count == 0


def test_the_settings_need_a_bucket_and_read_secrets_from_files(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    secret = tmp_path / "s3-secret"
    secret.write_text("from-a-file\n")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"PORTAL_VAR_DIR": str(tmp_path), "DEBUG": "true", "DATASET_STORAGE": "s3"})
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "DATASET_STORAGE=s3 needs DATASET_S3_BUCKET" in refused.stderr
    env.update({"DATASET_S3_BUCKET": "b", "DATASET_S3_SECRET_ACCESS_KEY_FILE": str(secret)})
    shown = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings as s\nprint(s.DATASET_S3_SECRET_ACCESS_KEY)",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.stdout.strip().splitlines()[-1] == "from-a-file", shown.stderr
