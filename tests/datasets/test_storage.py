from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datasets.storage import IncompleteUpload, UploadTooLarge, get_storage
from tests.datasets.conftest import chunks_of, stored_files

DATA = b"a,b\n1,2\n" * 50_000

pytestmark = pytest.mark.usefixtures("blob_backend")


def test_it_stores_bytes_under_their_sha256_with_both_digests(store: Path) -> None:
    storage = get_storage()
    staged = storage.put_stream(chunks_of(DATA), max_bytes=10**9)
    sha = hashlib.sha256(DATA).hexdigest()
    assert (staged.sha256, staged.md5, staged.size) == (sha, hashlib.md5(DATA).hexdigest(), len(DATA))  # noqa: S324
    assert stored_files(store) == [f"sha256/{sha[:2]}/{sha[2:]}"]
    assert storage.exists(sha) and storage.size(sha) == len(DATA)
    with storage.open(sha) as handle:
        assert handle.read() == DATA


def test_storing_the_same_bytes_twice_keeps_one_file(store: Path) -> None:
    storage = get_storage()
    storage.put_stream(chunks_of(DATA), max_bytes=10**9)
    storage.put_stream(chunks_of(DATA, 7_777), max_bytes=10**9)
    assert len(stored_files(store)) == 1


def test_it_aborts_at_the_cap_while_streaming_and_keeps_nothing(store: Path) -> None:
    received: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            received.append(1)
            yield b"x" * 1024

    with pytest.raises(UploadTooLarge, match="10,000 bytes"):
        get_storage().put_stream(endless(), max_bytes=10_000)
    assert len(received) == 10  # it stopped reading at the cap
    assert stored_files(store) == []


def test_a_source_that_fails_midway_leaves_nothing(store: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"a,b\n"
        raise ConnectionResetError("client went away")

    with pytest.raises(IncompleteUpload, match="interrupted after 4 bytes"):
        get_storage().stage(broken(), max_bytes=10**6)
    assert stored_files(store) == []


def test_fewer_bytes_than_announced_is_an_incomplete_upload(store: Path) -> None:
    with pytest.raises(IncompleteUpload, match="ended after 8 of the 100 bytes"):
        get_storage().stage(chunks_of(b"a,b\n1,2\n"), max_bytes=10**6, expected_size=100)
    assert stored_files(store) == []


def test_delete_removes_the_blob_and_its_empty_directory(store: Path) -> None:  # (S3 has no directories)
    storage = get_storage()
    staged = storage.put_stream(chunks_of(DATA), max_bytes=10**9)
    storage.delete(staged.sha256)
    storage.delete(staged.sha256)  # deleting twice is harmless
    assert not storage.exists(staged.sha256)
    assert stored_files(store) == []
    assert not (store / "sha256" / staged.sha256[:2]).exists()


def test_only_temp_files_untouched_for_long_count_as_stale(store: Path) -> None:
    storage: Any = get_storage()
    storage.temp_dir.mkdir(parents=True)
    old, fresh = storage.temp_dir / "upload-old.part", storage.temp_dir / "upload-new.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert storage.stale_temp_files(3600) == [old]


def test_keys_must_be_sha256_digests() -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        get_storage().key_for("../../etc/passwd")
