"""Inspection: formats, row counts and schemas, and a clear error for every kind of bad input."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.inspect import DatasetInputError, Limits, inspect_file, safe_member_name

LIMITS = Limits(
    max_columns=10_000, max_field_bytes=1024**2, max_members=100, max_unpacked_bytes=10 * 1024**2, max_ratio=100
)


def inspect(tmp_path: Path, name: str, data: bytes, limits: Limits = LIMITS):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(data)
    return inspect_file(path, name, limits)


def refused(tmp_path: Path, name: str, data: bytes, limits: Limits = LIMITS) -> DatasetInputError:
    with pytest.raises(DatasetInputError) as caught:
        inspect(tmp_path, name, data, limits)
    return caught.value


# Formats -------------------------------------------------------------------------------------------


def test_a_csv_gets_its_row_count_and_column_types(tmp_path: Path) -> None:
    found = inspect(tmp_path, "iris.csv", b"length,species,ok\n5.1,setosa,true\n4.9,setosa,false\n")
    assert (found.format, found.row_count) == ("csv", 2)
    assert found.schema == [
        {"name": "length", "type": "double"},
        {"name": "species", "type": "string"},
        {"name": "ok", "type": "bool"},
    ]


def test_a_column_whose_type_changes_far_down_the_file_is_widened_not_refused(tmp_path: Path) -> None:
    data = b"n,s\n" + b"1,a\n" * 400_000 + b"2.5,b\n"
    found = inspect(tmp_path, "late.csv", data, Limits(10_000, 1024, 10, 10, 10))  # small blocks
    assert found.row_count == 400_001
    assert found.schema[0] == {"name": "n", "type": "double"}


def test_quoted_fields_may_hold_commas_newlines_and_doubled_quotes(tmp_path: Path) -> None:
    found = inspect(tmp_path, "q.csv", b'a,b\n1,"x, ""y""\nz"\n2,w\n')
    assert found.row_count == 2


def test_a_parquet_file_is_read_from_its_footer(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", None]}), path)
    found = inspect_file(path, "whatever.bin", LIMITS)
    assert (found.format, found.row_count) == ("parquet", 3)
    assert found.schema == [{"name": "x", "type": "int64"}, {"name": "y", "type": "string"}]


def test_json_lines_get_rows_and_a_schema(tmp_path: Path) -> None:
    found = inspect(tmp_path, "d.jsonl", b'{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n\n{"a": 3}\n')
    assert (found.format, found.row_count) == ("jsonl", 3)
    assert found.schema == [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}]


def test_a_zip_is_a_directory_dataset_with_a_manifest(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/b.txt", b"bee")
        archive.writestr("a.txt", b"ay")
        archive.writestr("images/", b"")
    found = inspect(tmp_path, "pics.zip", buffer.getvalue())
    assert found.format == "directory" and found.row_count is None
    assert [(m["path"], m["size"]) for m in found.manifest] == [("a.txt", 2), ("images/b.txt", 3)]
    assert found.manifest[0]["sha256"] == hashlib.sha256(b"ay").hexdigest()


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def test_a_gzipped_tar_is_a_directory_dataset(tmp_path: Path) -> None:
    data = tar_bytes((tarfile.TarInfo("data/x.csv"), b"a\n1\n"), (tarfile.TarInfo("README"), b"hi"), mode="w:gz")
    found = inspect(tmp_path, "bundle.tar.gz", data)
    assert found.format == "directory"
    assert [m["path"] for m in found.manifest] == ["README", "data/x.csv"]


# Bad text --------------------------------------------------------------------------------------------


def test_latin1_text_is_refused_naming_the_line_and_column(tmp_path: Path) -> None:
    error = refused(tmp_path, "bad.csv", "name,city\nada,Zürich\n".encode("latin-1"))
    assert "not valid UTF-8" in error.message and "line 2, column 2 ('city')" in error.message
    assert error.details["line"] == 2


def test_nul_bytes_are_refused_naming_the_line(tmp_path: Path) -> None:
    error = refused(tmp_path, "nul.csv", b"a,b\n1,2\n3,x\x00y\n")
    assert "NUL byte" in error.message and "line 3" in error.message


def test_utf16_is_refused_as_not_utf8(tmp_path: Path) -> None:
    error = refused(tmp_path, "wide.csv", "a,b\n1,2\n".encode("utf-16"))
    assert "not valid UTF-8" in error.message or "NUL byte" in error.message


def test_a_ragged_row_is_refused_naming_the_row_and_the_column_counts(tmp_path: Path) -> None:
    error = refused(tmp_path, "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n")
    assert error.message.startswith("Row 2 has 2 columns, expected 3")
    assert error.details == {"row": 2, "columns": 2, "expected_columns": 3}


def test_a_ragged_row_deep_in_a_big_file_is_found_by_number(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1,2\n" * 300_000 + b"1,2,3\n"
    error = refused(tmp_path, "deep.csv", data, Limits(10_000, 1024, 10, 10, 10))
    assert "Row 300,001 has 3 columns, expected 2" in error.message


def test_an_unclosed_quote_is_refused_naming_where_it_opens(tmp_path: Path) -> None:
    error = refused(tmp_path, "quote.csv", b'a,b\n1,x\n2,"never closed\n3,y\n')
    assert "Unclosed quote" in error.message and "line 3, column 2 ('b')" in error.message


def test_100000_columns_are_refused_quickly_with_the_limit(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(100_000)).encode()
    data = header + b"\n" + b",".join([b"1"] * 100_000) + b"\n"
    started = time.monotonic()
    error = refused(tmp_path, "wide.csv", data)
    assert time.monotonic() - started < 2
    assert "100,000 columns; at most 10,000 are allowed (DATASET_MAX_COLUMNS)" in error.message
    assert error.details["limit"] == 10_000


def test_a_10_mb_field_is_refused_naming_row_column_and_limit(tmp_path: Path) -> None:
    data = b"id,text\n1,short\n2," + b"x" * (10 * 1024**2) + b"\n"
    error = refused(tmp_path, "big.csv", data)
    assert "Row 2, column 2 ('text') holds a field of 10,485,760 bytes" in error.message
    assert "1,048,576 bytes (DATASET_MAX_FIELD_BYTES)" in error.message


def test_a_row_longer_than_a_block_is_refused_with_the_limit(tmp_path: Path) -> None:
    small = Limits(10_000, 1024, 10, 10, 10)  # blocks of 4 MiB
    data = b"id,text\n1,a\n2," + b"x" * (5 * 1024**2) + b"\n"
    error = refused(tmp_path, "huge.csv", data, small)
    assert "DATASET_MAX_FIELD_BYTES" in error.message and "2" in error.message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "empty.csv", b"").message == "The file is empty."


def test_a_json_lines_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    error = refused(tmp_path, "d.jsonl", b'{"a": 1}\n{"a": 2,\n')
    assert error.message.startswith("Line 2 is not valid JSON")


def test_a_json_lines_field_that_changes_type_is_named(tmp_path: Path) -> None:
    error = refused(tmp_path, "d.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": "three"}\n')
    assert "Line 3, field 'a' is a string, but it was a number on line 1" in error.message


def test_json_lines_with_too_many_fields_are_refused(tmp_path: Path) -> None:
    record = json.dumps({f"k{i}": i for i in range(20_000)}).encode()
    error = refused(tmp_path, "wide.jsonl", record + b"\n")
    assert "20,000 fields" in error.message and "DATASET_MAX_COLUMNS" in error.message


def test_a_corrupt_parquet_file_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "x.parquet", b"PAR1" + b"\x00garbage" * 10 + b"PAR1")
    assert "not a valid Parquet file" in error.message


# Archives: path safety and bombs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/evil.dll", "absolute path"),
        ("../../outside.txt", "'..' segment"),
        ("data/../../outside.txt", "'..' segment"),
        ("data\\..\\evil.txt", "backslash"),
        ("bad\x00name", "control characters"),
    ],
)
def test_unsafe_member_paths_are_refused(name: str, problem: str) -> None:
    with pytest.raises(DatasetInputError, match=problem):
        safe_member_name(name)


def zip_bytes(*members: tuple[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_slip_member_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "slip.zip", zip_bytes(("ok.txt", b"ok"), ("../../evil.sh", b"rm -rf /")))
    assert "zip slip" in error.message and error.details["member"] == "../../evil.sh"


def test_a_zip_with_an_absolute_member_is_refused(tmp_path: Path) -> None:
    assert "absolute path" in refused(tmp_path, "abs.zip", zip_bytes(("/tmp/x", b"x"))).message


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    error = refused(tmp_path, "bomb.zip", zip_bytes(("zeros.bin", b"\0" * (50 * 1024**2))))
    assert "zip bomb" in error.message and "DATASET_MAX_COMPRESSION_RATIO" in error.message


def test_an_archive_that_unpacks_beyond_the_total_cap_is_refused(tmp_path: Path) -> None:
    members = [(f"f{i}.bin", bytes(range(256)) * 4096 * 3) for i in range(5)]  # 15 MiB, incompressible-ish
    limits = Limits(10_000, 1024**2, 100, 10 * 1024**2, 10**6)
    error = refused(tmp_path, "big.zip", zip_bytes(*members, compression=zipfile.ZIP_STORED), limits)
    assert "DATASET_MAX_UNPACKED_BYTES" in error.message


def test_a_zip_with_a_lying_header_is_still_capped_by_the_bytes_that_come_out(tmp_path: Path) -> None:
    # A bomb in a tar.gz has no per-member header to check: the ratio is counted while reading.
    data = tar_bytes((tarfile.TarInfo("zeros.bin"), b"\0" * (30 * 1024**2)), mode="w:gz")
    error = refused(tmp_path, "bomb.tar.gz", data)
    assert "zip bomb" in error.message


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "many.zip", zip_bytes(*[(f"f{i}", b"x") for i in range(101)]))
    assert "DATASET_MAX_ARCHIVE_MEMBERS" in error.message


def test_a_tar_symlink_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    error = refused(tmp_path, "link.tar", tar_bytes((tarfile.TarInfo("ok.txt"), b"ok"), (link, None)))
    assert "is a link (to '/etc/passwd')" in error.message


def test_a_tar_hard_link_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("shadow")
    link.type, link.linkname = tarfile.LNKTYPE, "ok.txt"
    assert "link" in refused(tmp_path, "hl.tar", tar_bytes((tarfile.TarInfo("ok.txt"), b"ok"), (link, None))).message


def test_a_tar_device_is_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("sda")
    device.type = tarfile.BLKTYPE
    error = refused(tmp_path, "dev.tar", tar_bytes((device, None)))
    assert "device, FIFO or other special file" in error.message


def test_a_tar_member_with_dot_dot_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "slip.tar", tar_bytes((tarfile.TarInfo("../escape.txt"), b"x")))
    assert "zip slip" in error.message


def test_a_zip_symlink_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16) | 0
        archive.writestr(info, "/etc/passwd")
    assert "symbolic link" in refused(tmp_path, "link.zip", buffer.getvalue()).message


def test_gzip_that_is_not_a_tar_is_refused_with_the_supported_formats(tmp_path: Path) -> None:
    import gzip

    error = refused(tmp_path, "data.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    assert "CSV, Parquet, JSON Lines" in error.message
