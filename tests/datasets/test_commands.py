"""manage.py dataset_push and dataset_gc."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from datasets.models import Blob, DatasetVersion
from datasets.services import delete_version
from tests.datasets.conftest import stored_files
from tests.datasets.factories import IRIS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_backend")]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_dataset_push_creates_a_version_and_prints_it(tmp_path: Path, editor: Any) -> None:
    path = tmp_path / "iris.csv"
    path.write_bytes(IRIS)
    output = run("dataset_push", "iris", str(path), "-m", "first", "--user", "erin")
    assert output.startswith("Pushed iris version 1 (sha256 ") and "3 rows" in output
    version = DatasetVersion.objects.get()
    assert (version.author, version.message, version.dataset.owner) == (editor, "first", editor)


def test_dataset_push_of_identical_content_says_nothing_new_was_created(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    path.write_bytes(IRIS)
    run("dataset_push", "iris", str(path), "-m", "first")
    output = run("dataset_push", "iris", str(path), "-m", "again")
    assert "iris version 1 already has this content" in output and "no new version" in output
    assert DatasetVersion.objects.count() == 1
    assert DatasetVersion.objects.get().author is None  # pushed without --user: "system"


def test_dataset_push_reports_bad_input_and_stores_nothing(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,2,3\n")
    with pytest.raises(CommandError, match="Row 1 has 3 columns, expected 2"):
        run("dataset_push", "bad", str(path), "-m", "x")
    assert stored_files(store) == [] and not DatasetVersion.objects.exists()


def test_dataset_push_refuses_unknown_users_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("dataset_push", "iris", str(tmp_path), "--user", "ghost")
    with pytest.raises(CommandError, match="is not a file"):
        run("dataset_push", "iris", str(tmp_path / "missing.csv"))


def test_dataset_gc_dry_run_lists_and_the_real_run_deletes(tmp_path: Path, store: Path, editor: Any) -> None:
    path = tmp_path / "iris.csv"
    path.write_bytes(IRIS)
    run("dataset_push", "iris", str(path))
    delete_version(DatasetVersion.objects.get(), actor=editor)
    sha = Blob.objects.get().sha256

    dry = run("dataset_gc", "--dry-run")
    assert f"Would delete blob sha256:{sha}" in dry and "Would delete 1 blob(s)" in dry
    assert len(stored_files(store)) == 1 and Blob.objects.exists()

    real = run("dataset_gc")
    assert f"Deleted blob sha256:{sha}" in real
    assert stored_files(store) == [] and not Blob.objects.exists()
    assert run("dataset_gc") == "Nothing to collect.\n"
