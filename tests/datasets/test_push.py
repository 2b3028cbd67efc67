"""The write path: push_version, delete_version and collect_garbage."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.models import AuditEvent
from datasets.dependants import Dependant
from datasets.inspect import DatasetInputError
from datasets.models import Blob, Dataset, DatasetVersion
from datasets.services import (
    DatasetInUse,
    InvalidDatasetName,
    collect_garbage,
    delete_version,
    push_version,
)
from datasets.storage import IncompleteUpload, LocalBlobStorage, UploadTooLarge
from tests.datasets.conftest import chunks_of, stored_files
from tests.datasets.factories import IRIS, csv_rows, push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_backend")]


def nothing_was_kept(store: Path) -> bool:
    return (
        stored_files(store) == []
        and not Dataset.objects.exists()
        and not DatasetVersion.objects.exists()
        and not Blob.objects.exists()
    )


def test_the_first_push_creates_the_dataset_owned_by_the_author(editor: Any, store: Path) -> None:
    version, created = push_version("iris", chunks_of(IRIS), filename="iris.csv", message="first", author=editor)
    assert created
    assert (version.dataset.name, version.dataset.owner, version.number, version.parent) == ("iris", editor, 1, None)
    assert (version.format, version.row_count, version.size, version.filename) == ("csv", 3, len(IRIS), "iris.csv")
    assert [c["name"] for c in version.schema] == ["sepal_length", "sepal_width", "species"]
    assert len(version.sha256) == 64 and len(version.md5) == 32
    assert stored_files(store) == [f"sha256/{version.sha256[:2]}/{version.sha256[2:]}"]
    event = AuditEvent.objects.get(action="dataset.push")
    assert event.actor == editor and event.details["number"] == 1


def test_later_pushes_number_versions_and_link_their_parent(editor: Any, admin_user: Any) -> None:
    first = push(author=editor)
    second = push(data=csv_rows(10), author=admin_user, filename="v2.csv")
    assert (second.number, second.parent, second.author) == (2, first, admin_user)
    assert second.dataset.owner == editor  # pushing to a dataset does not take it over


def test_pushing_identical_content_again_creates_no_version_and_says_so(editor: Any, store: Path) -> None:
    first = push(author=editor)
    push(data=csv_rows(5), author=editor)
    again, created = push_version("iris", chunks_of(IRIS, 5), filename="renamed.csv", author=editor)
    assert not created and again == first
    assert DatasetVersion.objects.count() == 2 and Blob.objects.count() == 2
    assert len(stored_files(store)) == 2  # the second upload's temp file is gone too
    assert AuditEvent.objects.filter(action="dataset.push").count() == 2


def test_the_same_bytes_in_two_datasets_are_stored_once(editor: Any, store: Path) -> None:
    a, b = push("a", author=editor), push("b", author=editor)
    assert a.blob == b.blob and a.dataset != b.dataset
    assert len(stored_files(store)) == 1


def test_a_deleted_versions_number_is_never_reused(editor: Any) -> None:
    push(author=editor)
    second = push(data=csv_rows(3), author=editor)
    delete_version(second, actor=editor)
    third = push(data=csv_rows(4), author=editor)
    assert third.number == 3 and third.parent.number == 1


@pytest.mark.parametrize(
    ("filename", "data", "problem"),
    [
        ("latin1.csv", "a,b\n1,Zürich\n".encode("latin-1"), "not valid UTF-8"),
        ("ragged.csv", b"a,b\n1,2\n3\n", "Row 2 has 1 columns, expected 2"),
        ("quote.csv", b'a,b\n1,"open\n', "Unclosed quote"),
        ("nul.csv", b"a,b\n1,\x00\n", "NUL byte"),
        ("wide.csv", ",".join(f"c{i}" for i in range(100_000)).encode() + b"\n", "DATASET_MAX_COLUMNS"),
        ("field.csv", b"a,b\n1," + b"x" * (10 * 1024**2) + b"\n", "DATASET_MAX_FIELD_BYTES"),
        ("empty.csv", b"", "empty"),
    ],
)
def test_bad_content_is_refused_and_nothing_is_stored_or_listed(
    editor: Any, store: Path, filename: str, data: bytes, problem: str
) -> None:
    with pytest.raises(DatasetInputError, match=problem):
        push_version("bad", chunks_of(data), filename=filename, author=editor)
    assert nothing_was_kept(store)


def test_an_upload_over_the_cap_is_refused_and_nothing_is_kept(editor: Any, store: Path, settings: Any) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(UploadTooLarge, match="1,000 bytes"):
        push_version("big", chunks_of(csv_rows(500), 100), filename="big.csv", author=editor)
    assert nothing_was_kept(store)


def test_an_interrupted_upload_is_refused_and_nothing_is_kept(editor: Any, store: Path) -> None:
    def dropped() -> Iterator[bytes]:
        yield b"a,b\n1,2\n"
        raise ConnectionResetError("peer reset")

    with pytest.raises(IncompleteUpload):
        push_version("cut", dropped(), filename="cut.csv", author=editor)
    with pytest.raises(IncompleteUpload):
        push_version("cut", chunks_of(b"a,b\n1,2\n"), filename="cut.csv", author=editor, expected_size=1000)
    assert nothing_was_kept(store)


def test_a_bad_name_is_refused_before_reading_anything(editor: Any) -> None:
    def untouched() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    with pytest.raises(InvalidDatasetName, match="letters, digits"):
        push_version("../etc", untouched(), filename="x.csv", author=editor)


def test_a_version_with_dependants_cannot_be_deleted(editor: Any, dependants: Callable[..., None]) -> None:
    version = push(author=editor)
    dependants(version.pk, Dependant("run", "train-42", "/experiments/runs/42/"), Dependant("model", "iris v3"))
    with pytest.raises(DatasetInUse) as caught:
        delete_version(version, actor=editor)
    assert [d.label for d in caught.value.dependants] == ["train-42", "iris v3"]
    assert "2 dependant(s) use it: run train-42, model iris v3" in str(caught.value)
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_deleting_a_version_is_audited_and_leaves_the_blob_for_garbage_collection(editor: Any, store: Path) -> None:
    version = push(author=editor)
    delete_version(version, actor=editor)
    assert not DatasetVersion.objects.exists()
    assert Blob.objects.count() == 1 and len(stored_files(store)) == 1
    assert AuditEvent.objects.filter(action="dataset.delete_version", actor=editor).exists()


def age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize("blob_backend", ["local"], indirect=True)  # S3's version: test_storage_s3.py
def test_garbage_collection_dry_run_lists_and_the_real_run_deletes(editor: Any, store: Path) -> None:
    kept = push(author=editor)
    dropped = push(data=csv_rows(3), author=editor)
    delete_version(dropped, actor=editor)
    storage = LocalBlobStorage()
    orphan = storage.put_stream(chunks_of(b"no row for me"), max_bytes=100)
    age(storage.path_for(orphan.sha256))
    young_orphan = storage.put_stream(chunks_of(b"a push in progress"), max_bytes=100)
    (storage.temp_dir / "upload-dead.part").write_bytes(b"half")
    age(storage.temp_dir / "upload-dead.part")
    (storage.temp_dir / "upload-live.part").write_bytes(b"receiving")

    report = collect_garbage(dry_run=True)
    assert report.blobs == [dropped.sha256]
    assert report.orphan_files == [storage.key_for(orphan.sha256)]
    assert report.temp_files == ["upload-dead.part"]
    assert len(stored_files(store)) == 6 and Blob.objects.count() == 2  # nothing deleted

    report = collect_garbage()
    assert (report.blobs, report.orphan_files, report.temp_files) == (
        [dropped.sha256],
        [storage.key_for(orphan.sha256)],
        ["upload-dead.part"],
    )
    assert sorted(stored_files(store)) == sorted(
        [storage.key_for(kept.sha256), storage.key_for(young_orphan.sha256), "tmp/upload-live.part"]
    )
    assert list(Blob.objects.values_list("sha256", flat=True)) == [kept.sha256]
    assert collect_garbage().count == 0


def test_garbage_collection_spares_a_blob_another_dataset_still_uses(editor: Any, store: Path) -> None:
    a = push("a", author=editor)
    push("b", author=editor)
    delete_version(a, actor=editor)
    assert collect_garbage().count == 0
    assert len(stored_files(store)) == 1


def test_a_blob_another_push_created_meanwhile_is_reused_not_a_500(db: None) -> None:
    from types import SimpleNamespace

    from django.db import transaction

    from datasets.models import Blob
    from datasets.services import blob_row

    staged = SimpleNamespace(sha256="a" * 64, md5="b" * 32, size=3)
    theirs = Blob.objects.create(sha256=staged.sha256, md5=staged.md5, size=3, storage_key="sha256/aa/" + "a" * 62)
    with transaction.atomic():
        assert blob_row(staged, "ignored") == theirs
        assert Blob.objects.count() == 1  # the transaction is still usable after the losing insert
