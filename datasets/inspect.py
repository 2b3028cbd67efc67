"""Inspecting an uploaded file: its format, row count, schema, or manifest for archives.

Everything streams with bounded memory, whatever the file's size: CSV through pyarrow's streaming
reader, Parquet from its footer metadata, JSON Lines through pyarrow's streaming reader, zip and tar
archives member by member. Bad input raises `DatasetInputError` with a message that names the
problem and where it is (line, row, column) or the limit it broke, and the setting that sets it.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from django.conf import settings

from datasets.models import DatasetFormat

CHUNK_BYTES = 1024 * 1024
MAX_WIDEN_RETRIES = 20
MAX_MEMBER_NAME = 1024


class DatasetInputError(ValueError):
    """The file cannot become a dataset version. `details` says where (line, row, column) or which limit."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {key: value for key, value in details.items() if value is not None}


@dataclass
class Inspection:
    format: str
    row_count: int | None = None
    schema: list[dict[str, str]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    max_columns: int
    max_field_bytes: int
    max_members: int
    max_unpacked_bytes: int
    max_ratio: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_columns=settings.DATASET_MAX_COLUMNS,
            max_field_bytes=settings.DATASET_MAX_FIELD_BYTES,
            max_members=settings.DATASET_MAX_ARCHIVE_MEMBERS,
            max_unpacked_bytes=settings.DATASET_MAX_UNPACKED_BYTES,
            max_ratio=settings.DATASET_MAX_COMPRESSION_RATIO,
        )

    @property
    def block_bytes(self) -> int:
        # pyarrow needs every row inside one block. Blocks well above the field cap let an oversized
        # field be read and reported with its row and column instead of as an opaque parse error.
        return max(4 * CHUNK_BYTES, 16 * self.max_field_bytes)


EXTENSIONS = {
    ".csv": DatasetFormat.CSV,
    ".parquet": DatasetFormat.PARQUET,
    ".pq": DatasetFormat.PARQUET,
    ".jsonl": DatasetFormat.JSONL,
    ".ndjson": DatasetFormat.JSONL,
    ".zip": DatasetFormat.DIRECTORY,
    ".tar": DatasetFormat.DIRECTORY,
    ".tgz": DatasetFormat.DIRECTORY,
    ".gz": DatasetFormat.DIRECTORY,  # .tar.gz; a gzip that is not a tar is refused by the tar reader
}


def detect_format(path: Path, filename: str) -> str:
    """The format from the file's first bytes where they say it, else from the name's extension."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        tail = b""
        if size >= 8:
            handle.seek(-4, io.SEEK_END)
            tail = handle.read(4)
    if size == 0:
        raise DatasetInputError("The file is empty.")
    if head.startswith(b"PAR1") and tail == b"PAR1":
        return DatasetFormat.PARQUET
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return DatasetFormat.DIRECTORY
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or head[257:262] == b"ustar":
        return DatasetFormat.DIRECTORY
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix == ".json":
        return DatasetFormat.JSONL  # only JSON Lines is accepted; a single JSON document fails with a clear line
    return DatasetFormat.JSONL if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else DatasetFormat.CSV


def inspect_file(path: Path, filename: str, limits: Limits | None = None, *, format: str | None = None) -> Inspection:
    limits = limits or Limits.from_settings()
    kind = format or detect_format(path, filename)
    if kind == DatasetFormat.CSV:
        return inspect_csv(path, limits)
    if kind == DatasetFormat.PARQUET:
        return inspect_parquet(path, limits)
    if kind == DatasetFormat.JSONL:
        return inspect_jsonl(path, limits)
    if kind == DatasetFormat.DIRECTORY:
        return inspect_archive(path, limits)
    raise DatasetInputError(f"Unknown format {kind!r}; use one of {', '.join(DatasetFormat.values)}.")


def type_name(arrow_type: pa.DataType) -> str:
    return str(arrow_type)


def schema_of(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": type_name(f.type)} for f in schema]


# Text checks shared by CSV and JSON Lines ----------------------------------------------------------


def _line_at(data: bytes, position: int) -> bytes:
    start = data.rfind(b"\n", 0, position) + 1
    end = data.find(b"\n", position)
    return data[start : end if end != -1 else len(data)]


def _column_at(line_prefix: bytes, header: list[str] | None) -> tuple[int, str | None]:
    """The 1-based column a position in a CSV line falls in, and its header name if known."""
    text = line_prefix.decode("utf-8", errors="replace")
    with contextlib.suppress(csv.Error):
        fields = next(csv.reader([text]), [""])
        number = max(len(fields), 1)
        name = header[number - 1] if header and number <= len(header) else None
        return number, name
    return 1, None


def check_text(path: Path, *, csv_header: list[str] | None = None) -> None:
    """Refuse text that is not UTF-8, holds NUL bytes, or (for CSV) leaves a quote open at the end.

    One streaming pass; the line of a problem is counted from the newlines before it.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    line = 1
    offset = 0
    quotes = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            nul = chunk.find(b"\x00")
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous chunk
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                bad = max(exc.start - pending, 0)
                if nul == -1 or bad < nul:
                    _text_error("is not valid UTF-8", chunk, bad, line, offset, csv_header, exc)
            if nul != -1:
                _text_error("contains a NUL byte", chunk, nul, line, offset, csv_header, None)
            line += chunk.count(b"\n")
            offset += len(chunk)
            if csv_header is not None:
                quotes += chunk.count(b'"')
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DatasetInputError(
                f"The file is not valid UTF-8: it ends in the middle of a character (line {line}). "
                "Save it as UTF-8 and push it again.",
                line=line,
            ) from None
    if csv_header is not None and quotes % 2:
        _unclosed_quote(path, csv_header)


def _text_error(
    problem: str,
    chunk: bytes,
    position: int,
    line: int,
    offset: int,
    header: list[str] | None,
    exc: UnicodeDecodeError | None,
) -> None:
    line += chunk.count(b"\n", 0, position)
    row_text = _line_at(chunk, position)
    start = chunk.rfind(b"\n", 0, position) + 1
    column, name = _column_at(chunk[start:position], header) if header is not None else (None, None)
    where = f"line {line}" + (f", column {column}" if column else "") + (f" ({name!r})" if name else "")
    what = f"byte 0x{chunk[position]:02x} at file offset {offset + position}"
    advice = (
        "Save it as UTF-8 (not Latin-1 or UTF-16) and push it again."
        if exc is not None
        else "NUL bytes never belong in a text file; is it binary, or UTF-16?"
    )
    raise DatasetInputError(
        f"The file {problem}: {what}, {where}: {row_text[:80].decode('utf-8', 'replace')!r}. {advice}",
        line=line,
        column=column,
        column_name=name,
        offset=offset + position,
    )


def _unclosed_quote(path: Path, header: list[str]) -> None:
    """Find the quote that opens a field and is never closed: the last one after which the count is odd."""
    inside = False
    opened_at = 0
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            for match in re.finditer(b'"', chunk):
                inside = not inside
                if inside:
                    opened_at = offset + match.start()
            offset += len(chunk)
    # Count lines up to the quote in chunks (the file may be huge); keep only the current line's start.
    line, line_start, offset, tail = 1, 0, 0, b""
    with open(path, "rb") as handle:
        while offset < opened_at:
            chunk = handle.read(min(CHUNK_BYTES, opened_at - offset))
            if not chunk:
                break
            newlines = chunk.count(b"\n")
            if newlines:
                line += newlines
                line_start = offset + chunk.rfind(b"\n") + 1
            offset += len(chunk)
        handle.seek(line_start)
        tail = handle.read(min(opened_at - line_start, CHUNK_BYTES) + 80)
    prefix = tail[: opened_at - line_start]
    column, name = _column_at(prefix, header)
    text = _line_at(tail, len(prefix))
    raise DatasetInputError(
        f"Unclosed quote: the quoted field that starts on line {line}, column {column}"
        + (f" ({name!r})" if name else "")
        + f" is never closed: {text[:80].decode('utf-8', 'replace')!r}. "
        'Close it, or double any quote inside a quoted field ("").',
        line=line,
        column=column,
        column_name=name,
    )


# CSV -------------------------------------------------------------------------------------------------


def read_csv_header(path: Path, limits: Limits) -> list[str]:
    """The header row, read from the first block only, so a 100,000-column file is refused at once."""
    with open(path, "rb") as handle:
        head = handle.read(limits.block_bytes + 1)
    end = head.find(b"\n")
    if end == -1:
        if len(head) > limits.block_bytes:
            raise DatasetInputError(
                f"The header row is longer than {limits.block_bytes:,} bytes; a CSV file needs its column names "
                "on the first line.",
                line=1,
                limit=limits.block_bytes,
            )
        end = len(head)
    first = head[:end].rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")
    count = first.count(b",") + 1
    if count > limits.max_columns:  # cheap upper bound first: commas inside quotes are rare in headers
        names = _parse_header(first)
        if len(names) > limits.max_columns:
            raise DatasetInputError(
                f"The file has {len(names):,} columns; at most {limits.max_columns:,} are allowed "
                "(DATASET_MAX_COLUMNS).",
                line=1,
                columns=len(names),
                limit=limits.max_columns,
            )
        return names
    return _parse_header(first)


def _parse_header(first: bytes) -> list[str]:
    text = first.decode("utf-8", errors="replace")
    try:
        old = csv.field_size_limit()
        csv.field_size_limit(max(old, len(text) + 1))
        return next(csv.reader([text]), [])
    except csv.Error:
        return text.split(",")


def inspect_csv(path: Path, limits: Limits) -> Inspection:
    header = read_csv_header(path, limits)
    check_text(path, csv_header=header)
    column_types: dict[str, pa.DataType] = {}
    for _ in range(MAX_WIDEN_RETRIES):
        try:
            return _read_csv(path, limits, header, column_types)
        except _Widen as widen:
            column_types[widen.column] = widen.to
    # Types kept changing deep into the file: read every column that could not settle as text.
    return _read_csv(path, limits, header, column_types, all_strings=True)


class _Widen(Exception):
    def __init__(self, column: str, to: pa.DataType) -> None:
        self.column = column
        self.to = to


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")
_ROW = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")


def _read_csv(
    path: Path, limits: Limits, header: list[str], column_types: dict[str, pa.DataType], *, all_strings: bool = False
) -> Inspection:
    invalid: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append(row)
        return "error"

    types = {name: column_types.get(name, pa.string()) for name in header} if all_strings else column_types
    convert = pa_csv.ConvertOptions(column_types=types)
    rows = 0
    try:
        reader = pa_csv.open_csv(
            path,
            # One thread: pyarrow then numbers rows, so errors can name them.
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=limits.block_bytes),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row),
            convert_options=convert,
        )
        schema = reader.schema
        for batch in reader:
            _check_field_sizes(batch, rows, limits)
            rows += batch.num_rows
    except pa.ArrowInvalid as exc:
        _csv_error(exc, invalid, rows, limits, header, column_types)
        raise  # _csv_error always raises; this keeps type checkers informed
    if len(schema) > limits.max_columns:
        raise DatasetInputError(
            f"The file has {len(schema):,} columns; at most {limits.max_columns:,} are allowed (DATASET_MAX_COLUMNS).",
            limit=limits.max_columns,
        )
    return Inspection(format=DatasetFormat.CSV, row_count=rows, schema=schema_of(schema))


def _check_field_sizes(batch: pa.RecordBatch, rows_before: int, limits: Limits) -> None:
    for index, column in enumerate(batch.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)) or len(column) == 0:
            continue
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is None or longest <= limits.max_field_bytes:
            continue
        at = pc.index(pc.greater(lengths, limits.max_field_bytes), True).as_py()
        row = rows_before + at + 1
        name = batch.schema.field(index).name
        raise DatasetInputError(
            f"Row {row:,}, column {index + 1} ({name!r}) holds a field of {longest:,} bytes; a field may be at most "
            f"{limits.max_field_bytes:,} bytes (DATASET_MAX_FIELD_BYTES).",
            row=row,
            column=index + 1,
            column_name=name,
            limit=limits.max_field_bytes,
        )


def _csv_error(
    exc: pa.ArrowInvalid,
    invalid: list[Any],
    rows: int,
    limits: Limits,
    header: list[str],
    column_types: dict[str, pa.DataType],
) -> None:
    message = str(exc)
    if invalid:
        row = invalid[0]
        # pyarrow counts the header as row 1; a data row's number is what people count after it.
        number = row.number - 1 if row.number else None
        where = f"Row {number:,}" if number else "A row"
        raise DatasetInputError(
            f"{where} has {row.actual_columns} columns, expected {row.expected_columns} (as in the header): "
            f"{row.text[:80]!r}. Every row needs one value per column; quote values that contain commas.",
            row=number,
            columns=row.actual_columns,
            expected_columns=row.expected_columns,
        ) from None
    match = _CONVERSION.search(message)
    if match:
        index, target = int(match.group(1)), match.group(2)
        if index >= len(header) or column_types.get(header[index]) == pa.string():
            raise DatasetInputError(f"The file is not valid CSV: {message}") from None
        # A type guessed from the first block did not hold further down: widen the column and read again.
        raise _Widen(header[index], pa.float64() if target == "int64" else pa.string()) from None
    if "straddling" in message or "straddles" in message:
        raise DatasetInputError(
            f"A row after row {rows:,} is longer than {limits.block_bytes:,} bytes, which no row may be: a field of "
            f"it is over the limit of {limits.max_field_bytes:,} bytes (DATASET_MAX_FIELD_BYTES), or a quote is "
            "never closed.",
            row=rows + 1,
            limit=limits.max_field_bytes,
        ) from None
    raise DatasetInputError(f"The file is not valid CSV: {message}") from None


# Parquet ---------------------------------------------------------------------------------------------


def inspect_parquet(path: Path, limits: Limits) -> Inspection:
    try:
        parquet = pq.ParquetFile(path)
        metadata = parquet.metadata
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise DatasetInputError(f"The file is not a valid Parquet file: {exc}") from None
    if metadata.num_columns > limits.max_columns:
        raise DatasetInputError(
            f"The file has {metadata.num_columns:,} columns; at most {limits.max_columns:,} are allowed "
            "(DATASET_MAX_COLUMNS).",
            columns=metadata.num_columns,
            limit=limits.max_columns,
        )
    return Inspection(format=DatasetFormat.PARQUET, row_count=metadata.num_rows, schema=schema_of(schema))


# JSON Lines ------------------------------------------------------------------------------------------


def inspect_jsonl(path: Path, limits: Limits) -> Inspection:
    check_text(path)
    _check_first_object(path, limits)
    rows = 0
    try:
        reader = pa_json.open_json(
            path,
            read_options=pa_json.ReadOptions(use_threads=False, block_size=limits.block_bytes),
            parse_options=pa_json.ParseOptions(newlines_in_values=False),
        )
        schema = reader.schema
        for batch in reader:
            rows += batch.num_rows
    except pa.ArrowInvalid as exc:
        _locate_jsonl_error(path, limits)
        raise DatasetInputError(f"The file is not valid JSON Lines: {exc}") from None
    if len(schema) > limits.max_columns:
        raise DatasetInputError(
            f"The records have {len(schema):,} distinct fields; at most {limits.max_columns:,} are allowed "
            "(DATASET_MAX_COLUMNS).",
            limit=limits.max_columns,
        )
    return Inspection(format=DatasetFormat.JSONL, row_count=rows, schema=schema_of(schema))


def _jsonl_lines(path: Path, limits: Limits) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        number = 0
        while True:
            line = handle.readline(limits.block_bytes + 1)
            if not line:
                return
            number += 1
            if len(line) > limits.block_bytes and not line.endswith(b"\n"):
                raise DatasetInputError(
                    f"Line {number:,} is longer than {limits.block_bytes:,} bytes, which no record may be; a field "
                    f"may be at most {limits.max_field_bytes:,} bytes (DATASET_MAX_FIELD_BYTES).",
                    line=number,
                    limit=limits.max_field_bytes,
                )
            yield number, line


def _check_first_object(path: Path, limits: Limits) -> None:
    for number, line in _jsonl_lines(path, limits):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return  # the full check below names the line
        if isinstance(record, dict) and len(record) > limits.max_columns:
            raise DatasetInputError(
                f"Line {number} has {len(record):,} fields; at most {limits.max_columns:,} columns are allowed "
                "(DATASET_MAX_COLUMNS).",
                line=number,
                columns=len(record),
                limit=limits.max_columns,
            )
        return


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _locate_jsonl_error(path: Path, limits: Limits) -> None:
    """pyarrow's JSON errors count rows within a block; find the line in Python (only on the error path)."""
    kinds: dict[str, tuple[str, int]] = {}
    for number, line in _jsonl_lines(path, limits):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetInputError(
                f"Line {number:,} is not valid JSON: {exc}. Each line must hold one JSON object.", line=number
            ) from None
        if not isinstance(record, dict):
            raise DatasetInputError(
                f"Line {number:,} holds a JSON {_kind(record)}, not an object; each line must hold one JSON object.",
                line=number,
            )
        for key, value in record.items():
            if value is None:
                continue
            kind = _kind(value)
            seen = kinds.setdefault(key, (kind, number))
            if seen[0] != kind:
                raise DatasetInputError(
                    f"Line {number:,}, field {key!r} is a {kind}, but it was a {seen[0]} on line {seen[1]:,}; "
                    "a field must keep one type in every record.",
                    line=number,
                    column_name=key,
                )
            if isinstance(value, str) and len(value.encode()) > limits.max_field_bytes:
                raise DatasetInputError(
                    f"Line {number:,}, field {key!r} holds {len(value.encode()):,} bytes; a field may be at most "
                    f"{limits.max_field_bytes:,} bytes (DATASET_MAX_FIELD_BYTES).",
                    line=number,
                    column_name=key,
                    limit=limits.max_field_bytes,
                )


# Archives: directory datasets ------------------------------------------------------------------------


def safe_member_name(name: str) -> str:
    """The archive member's path, or an error if extracting it could write outside the target directory."""
    if not name or len(name) > MAX_MEMBER_NAME:
        raise DatasetInputError(f"Archive member name {name[:80]!r} is empty or too long.", member=name[:200])
    if "\\" in name:
        raise DatasetInputError(
            f"Archive member {name!r} has a backslash in its path, which some tools treat as a directory separator.",
            member=name,
        )
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise DatasetInputError(f"Archive member {name!r} has control characters in its path.", member=name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DatasetInputError(
            f"Archive member {name!r} has an absolute path; members must be relative to the archive.", member=name
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise DatasetInputError(
            f"Archive member {name!r} has a '..' segment that would point outside the archive (zip slip).",
            member=name,
        )
    return "/".join(parts)


class _ArchiveBudget:
    def __init__(self, limits: Limits, compressed_size: int) -> None:
        self.limits = limits
        self.compressed_size = max(compressed_size, 1)
        self.total = 0
        self.members = 0
        self.names: set[str] = set()

    def add_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DatasetInputError(
                f"The archive has more than {self.limits.max_members:,} files (DATASET_MAX_ARCHIVE_MEMBERS).",
                limit=self.limits.max_members,
            )
        if name in self.names:
            raise DatasetInputError(f"The archive holds {name!r} twice.", member=name)
        self.names.add(name)

    def add_bytes(self, count: int, name: str) -> None:
        self.total += count
        if self.total > self.limits.max_unpacked_bytes:
            raise DatasetInputError(
                f"The archive unpacks to more than {self.limits.max_unpacked_bytes:,} bytes "
                f"(DATASET_MAX_UNPACKED_BYTES), reached while reading {name!r}; it looks like a zip bomb.",
                member=name,
                limit=self.limits.max_unpacked_bytes,
            )
        ratio_cap = self.limits.max_ratio * self.compressed_size
        if self.total > ratio_cap and self.total > CHUNK_BYTES:
            raise DatasetInputError(
                f"The archive unpacks to more than {self.limits.max_ratio} times its own size "
                f"(DATASET_MAX_COMPRESSION_RATIO), reached while reading {name!r}; it looks like a zip bomb.",
                member=name,
                limit=self.limits.max_ratio,
            )


def _hash_member(handle: BinaryIO, name: str, budget: _ArchiveBudget) -> tuple[int, str]:
    """Read a member to its end, counting the bytes that really come out (headers can lie)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK_BYTES):
        size += len(chunk)
        budget.add_bytes(len(chunk), name)
        digest.update(chunk)
    return size, digest.hexdigest()


def inspect_archive(path: Path, limits: Limits) -> Inspection:
    manifest = _zip_manifest(path, limits) if zipfile.is_zipfile(path) else _tar_manifest(path, limits)
    if not manifest:
        raise DatasetInputError("The archive holds no files.")
    return Inspection(format=DatasetFormat.DIRECTORY, manifest=sorted(manifest, key=lambda m: m["path"]))


def _zip_manifest(path: Path, limits: Limits) -> list[dict[str, Any]]:
    budget = _ArchiveBudget(limits, path.stat().st_size)
    manifest = []
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_members:
                raise DatasetInputError(
                    f"The archive has {len(infos):,} members; at most {limits.max_members:,} are allowed "
                    "(DATASET_MAX_ARCHIVE_MEMBERS).",
                    limit=limits.max_members,
                )
            declared = 0
            for info in infos:
                name = safe_member_name(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise DatasetInputError(f"Archive member {info.filename!r} is a symbolic link.", member=name)
                if info.is_dir():
                    continue
                declared += info.file_size
                if (
                    info.compress_size
                    and info.file_size / info.compress_size > limits.max_ratio
                    and (info.file_size > CHUNK_BYTES)
                ):
                    raise DatasetInputError(
                        f"Archive member {name!r} unpacks to {info.file_size:,} bytes from {info.compress_size:,}, "
                        f"more than {limits.max_ratio} times (DATASET_MAX_COMPRESSION_RATIO); it looks like a "
                        "zip bomb.",
                        member=name,
                        limit=limits.max_ratio,
                    )
            if declared > limits.max_unpacked_bytes:
                raise DatasetInputError(
                    f"The archive unpacks to {declared:,} bytes; at most {limits.max_unpacked_bytes:,} are allowed "
                    "(DATASET_MAX_UNPACKED_BYTES); it looks like a zip bomb.",
                    limit=limits.max_unpacked_bytes,
                )
            for info in infos:
                if info.is_dir():
                    continue
                name = safe_member_name(info.filename)
                budget.add_member(name)
                with archive.open(info) as member:
                    size, digest = _hash_member(member, name, budget)
                manifest.append({"path": name, "size": size, "sha256": digest})
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise DatasetInputError(f"The zip archive cannot be read: {exc}") from None
    return manifest


def _tar_manifest(path: Path, limits: Limits) -> list[dict[str, Any]]:
    budget = _ArchiveBudget(limits, path.stat().st_size)
    manifest = []
    try:
        # Stream mode ("r|*"): members are read in order, never seeking and never extracted.
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                name = safe_member_name(member.name)
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    raise DatasetInputError(
                        f"Archive member {member.name!r} is a link (to {member.linkname!r}); links are not allowed.",
                        member=name,
                    )
                if not member.isreg():
                    raise DatasetInputError(
                        f"Archive member {member.name!r} is a device, FIFO or other special file; only regular "
                        "files and directories are allowed.",
                        member=name,
                    )
                budget.add_member(name)
                handle = archive.extractfile(member)
                assert handle is not None  # regular files always have one
                size, digest = _hash_member(handle, name, budget)
                manifest.append({"path": name, "size": size, "sha256": digest})
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetInputError(
            f"The file is neither a zip nor a readable tar archive: {exc}. Datasets are CSV, Parquet, JSON Lines, "
            "or a zip or tar of files."
        ) from None
    return manifest
