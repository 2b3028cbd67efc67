"""Profiling a tabular file in bounded memory: one streaming pass for the statistics, one for histograms.

`profile_file(path, format)` reads the file (or a `FileSource`: anything it can open as a seekable binary
file, such as a blob in S3) a block at a time with pyarrow (CSV through the streaming
reader, Parquet batch by batch, JSON Lines through the streaming reader) and folds every block into
per-column accumulators with pyarrow.compute and numpy, never a Python loop per value:

- nulls, and for numbers min, max, mean and standard deviation (Chan's parallel merge of each block's
  count, mean and sum of squared deviations, which stays numerically stable however many blocks);
- distinct counts, exact while a column has at most `distinct_cap` distinct values, then a KMV sketch
  (`datasets.sketches`), marked approximate;
- quantiles from a uniform sample of at most `sample_size` values per column: exact (the sample is every
  value) while the column has no more values than that, approximate beyond, and marked which;
- top values with counts for text and boolean columns, exact while the distinct values fit under the
  cap, then the heaviest `distinct_cap // 10` values are kept between blocks (approximate);
- a second pass for numeric histograms with `bins` equal-width bins between the first pass's min and max
  (integer columns with a range under `bins` get one bin per integer).

Memory depends on the block size and the number of columns, never on the number of rows: per column
the caps above bound the distinct set, the counts and the sample, and a wide table lowers them (the
budgets are shared across columns). `ProfileOptions.block_bytes` sets how many bytes a block holds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from datasets.models import DatasetFormat
from datasets.sketches import BottomKSample, KMVSketch, hash_array

PROFILE_FORMAT = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
QUANTILE_KEYS = tuple(f"p{round(q * 100)}" for q in QUANTILES)
TOP_K = 50
MAX_VALUE_CHARS = 200
# Shared budgets: a 10,000-column file gets smaller per-column caps, never more memory.
DISTINCT_BUDGET = 4_000_000
SAMPLE_BUDGET = 4_000_000
MIN_PER_COLUMN = 1_000

Progress = Callable[[int, int, str], None]
BatchHook = Callable[[pa.RecordBatch], None]


class ProfileError(ValueError):
    """The file cannot be profiled (a format that has no columns, or it no longer parses)."""


@dataclass(frozen=True)
class ProfileOptions:
    block_bytes: int = 16 * 1024 * 1024
    distinct_cap: int = 100_000
    sample_size: int = 100_000
    bins: int = 30
    top_k: int = TOP_K
    kmv_k: int = 4096
    progress_interval: float = 0.5  # seconds between progress reports


@dataclass(frozen=True)
class FileSource:
    """Bytes that are not a local file: `open()` gives a new seekable binary file for each pass."""

    open: Callable[[], BinaryIO]
    size: int
    name: str = ""


def _source(path: Path | str | FileSource) -> FileSource:
    if isinstance(path, FileSource):
        return path
    local = Path(path)
    return FileSource(lambda: open(local, "rb"), local.stat().st_size, str(local))


@dataclass
class ReaderStats:
    """What the reader materialised: tests assert a bounded number of rows per block."""

    blocks: int = 0
    max_block_rows: int = 0

    def saw(self, batch: pa.RecordBatch) -> None:
        self.blocks += 1
        self.max_block_rows = max(self.max_block_rows, batch.num_rows)


# Column kinds ------------------------------------------------------------------------------------


def column_kind(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return "categorical"
    if pa.types.is_temporal(kind):
        return "temporal"
    return "other"


def _plain(array: pa.Array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


class _Distinct:
    """Exact distinct values up to `cap`, then a KMV estimate from the hashes."""

    def __init__(self, cap: int, k: int) -> None:
        self.cap = cap
        self.k = k
        self.values: pa.Array | None = None
        self.sketch: KMVSketch | None = None

    def add(self, values: pa.Array) -> None:
        """`values`: the block's non-null values, already made unique."""
        if self.sketch is not None:
            self.sketch.add(hash_array(values))
            return
        merged = values if self.values is None else pc.unique(pa.concat_arrays([self.values, values]))
        if len(merged) > self.cap:
            self.sketch = KMVSketch(self.k)
            self.sketch.add(hash_array(merged))
            self.values = None
        else:
            self.values = merged

    @property
    def exact(self) -> bool:
        return self.sketch is None

    def count(self) -> int:
        if self.sketch is not None:
            return self.sketch.estimate()
        return 0 if self.values is None else len(self.values)


class _Column:
    def __init__(self, name: str, arrow_type: pa.DataType, options: ProfileOptions, index: int, caps: dict[str, int]):
        self.name = name
        self.type = arrow_type
        self.kind = column_kind(arrow_type)
        self.options = options
        self.rows = 0
        self.nulls = 0
        self.distinct = _Distinct(caps["distinct"], options.kmv_k)

    def add(self, array: pa.Array) -> None:
        self.rows += len(array)
        self.nulls += array.null_count
        self.fold(array.drop_null() if array.null_count else array)

    def fold(self, values: pa.Array) -> None:
        if len(values):
            self.distinct.add(pc.unique(values))

    def result(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.type),
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "non_null": self.rows - self.nulls,
            "distinct": self.distinct.count(),
            "distinct_exact": self.distinct.exact,
        }


class _Numeric(_Column):
    """Moments by Chan's merge, min/max, a bottom-k sample for quantiles, then a histogram (pass two)."""

    def __init__(self, name: str, arrow_type: pa.DataType, options: ProfileOptions, index: int, caps: dict[str, int]):
        super().__init__(name, arrow_type, options, index, caps)
        self.integer = pa.types.is_integer(arrow_type) or (
            pa.types.is_dictionary(arrow_type) and pa.types.is_integer(arrow_type.value_type)
        )
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min: float | int | None = None
        self.max: float | int | None = None
        self.non_finite = 0
        self.sample = BottomKSample(caps["sample"], seed=index)
        self.edges: np.ndarray | None = None
        self.counts: np.ndarray | None = None

    def _finite(self, values: pa.Array) -> np.ndarray:
        if pa.types.is_decimal(values.type):
            values = values.cast(pa.float64())
        raw = values.to_numpy(zero_copy_only=False)
        if self.integer:
            return raw
        floats = np.asarray(raw, dtype=np.float64)
        finite = np.isfinite(floats)
        if not finite.all():
            return floats[finite]
        return floats

    def fold(self, values: pa.Array) -> None:
        if not len(values):
            return
        self.distinct.add(pc.unique(values))
        raw = self._finite(values)
        self.non_finite += len(values) - len(raw)
        if not len(raw):
            return
        low, high = raw.min(), raw.max()
        low, high = (int(low), int(high)) if self.integer else (float(low), float(high))
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        floats = raw.astype(np.float64, copy=False)
        n_b = len(floats)
        mean_b = float(floats.mean())
        m2_b = float(np.square(floats - mean_b).sum())
        # Chan et al.: merge (n, mean, M2) of two parts without revisiting either.
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.count * n_b / total
        self.count = total
        self.sample.add(floats)

    # Pass two ------------------------------------------------------------------------------------

    def prepare_histogram(self) -> None:
        if self.min is None or self.max is None:
            return
        bins = self.options.bins
        low, high = float(self.min), float(self.max)
        if self.integer and high - low + 1 <= bins:
            self.edges = np.arange(low - 0.5, high + 1.0, 1.0)  # one bin per integer
        elif high == low:
            self.edges = np.array([low - 0.5, high + 0.5])
        else:
            self.edges = np.linspace(low, high, bins + 1)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def histogram_add(self, array: pa.Array) -> None:
        if self.edges is None or self.counts is None:
            return
        values = array.drop_null() if array.null_count else array
        if not len(values):
            return
        floats = np.asarray(self._finite(values), dtype=np.float64)
        low, width = self.edges[0], (self.edges[-1] - self.edges[0]) / len(self.counts)
        index = ((floats - low) / width).astype(np.int64)
        np.clip(index, 0, len(self.counts) - 1, out=index)  # the maximum belongs to the last bin
        self.counts += np.bincount(index, minlength=len(self.counts))

    def result(self) -> dict[str, Any]:
        out = super().result()
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else (0.0 if self.count == 1 else None)
        sample = self.sample.values
        quantiles: dict[str, float] | None = None
        if len(sample):
            values = np.quantile(sample, QUANTILES, method="linear")
            quantiles = {key: float(v) for key, v in zip(QUANTILE_KEYS, values, strict=True)}
        out.update(
            {
                "min": self.min,
                "max": self.max,
                "mean": self.mean if self.count else None,
                "std": std,
                "non_finite": self.non_finite,
                "quantiles": quantiles,
                "quantiles_exact": self.sample.exact,
                "quantiles_sample": min(self.sample.seen, self.sample.k),
                "histogram": None
                if self.counts is None or self.edges is None
                else {"edges": [float(e) for e in self.edges], "counts": [int(c) for c in self.counts]},
            }
        )
        return out


class _Categorical(_Column):
    """Value counts merged block by block (exact until the cap, then the heaviest values are kept)."""

    def __init__(self, name: str, arrow_type: pa.DataType, options: ProfileOptions, index: int, caps: dict[str, int]):
        super().__init__(name, arrow_type, options, index, caps)
        self.cap = caps["distinct"]
        self.keep = max(self.cap // 10, options.top_k)
        self.values: pa.Array | None = None
        self.counts: pa.Array | None = None
        self.top_exact = True
        self.text = not pa.types.is_boolean(arrow_type)
        self.min_length: int | None = None
        self.max_length: int | None = None

    def fold(self, values: pa.Array) -> None:
        if not len(values):
            return
        if self.text:
            lengths = pc.min_max(pc.utf8_length(values)).as_py()
            self.min_length = lengths["min"] if self.min_length is None else min(self.min_length, lengths["min"])
            self.max_length = lengths["max"] if self.max_length is None else max(self.max_length, lengths["max"])
        counted = pc.value_counts(values)
        uniques, counts = counted.field("values"), counted.field("counts")
        if self.values is None or self.counts is None:
            merged_values, merged_counts = uniques, counts
        else:
            table = pa.table(
                {"v": pa.concat_arrays([self.values, uniques]), "c": pa.concat_arrays([self.counts, counts])}
            )
            grouped = table.group_by("v", use_threads=False).aggregate([("c", "sum")])
            merged_values, merged_counts = (
                grouped.column("v").combine_chunks(),
                grouped.column("c_sum").combine_chunks(),
            )
        if self.distinct.exact and len(merged_values) <= self.cap:
            self.distinct.values = merged_values
        else:
            if self.distinct.exact:
                self.distinct.sketch = KMVSketch(self.options.kmv_k)
                self.distinct.sketch.add(hash_array(merged_values))
                self.distinct.values = None
            else:
                self.distinct.add(uniques)
            if len(merged_values) > self.keep:
                # Beyond the cap only the heaviest values stay: counts of values dropped earlier are lost.
                self.top_exact = False
                heaviest = np.argpartition(-merged_counts.to_numpy(), self.keep - 1)[: self.keep]
                merged_values = merged_values.take(pa.array(heaviest))
                merged_counts = merged_counts.take(pa.array(heaviest))
        self.values, self.counts = merged_values, merged_counts

    def result(self) -> dict[str, Any]:
        out = super().result()
        top: list[dict[str, Any]] = []
        if self.values is not None and self.counts is not None and len(self.values):
            counts = self.counts.to_numpy()
            k = self.options.top_k
            candidates = np.arange(len(counts))
            if len(counts) > k:
                threshold = np.partition(counts, len(counts) - k)[len(counts) - k]
                # Ties at the threshold are cut to a bounded few, in order of first appearance in the file.
                candidates = np.flatnonzero(counts >= threshold)[: 20 * k]
            labels = self.values.take(pa.array(candidates)).to_pylist()
            pairs = sorted(zip((int(c) for c in counts[candidates]), map(_label, labels), strict=True), key=_top_order)
            top = [{"value": value, "count": count} for count, value in pairs[:k]]
        out.update({"top": top, "top_exact": self.top_exact})
        if self.text:
            out.update({"min_length": self.min_length, "max_length": self.max_length})
        return out


def _top_order(pair: tuple[int, str]) -> tuple[int, str]:
    return -pair[0], pair[1]


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


class _Temporal(_Column):
    def __init__(self, name: str, arrow_type: pa.DataType, options: ProfileOptions, index: int, caps: dict[str, int]):
        super().__init__(name, arrow_type, options, index, caps)
        self.min: Any = None
        self.max: Any = None

    def fold(self, values: pa.Array) -> None:
        if not len(values):
            return
        self.distinct.add(pc.unique(values))
        bounds = pc.min_max(values).as_py()
        self.min = bounds["min"] if self.min is None else min(self.min, bounds["min"])
        self.max = bounds["max"] if self.max is None else max(self.max, bounds["max"])

    def result(self) -> dict[str, Any]:
        out = super().result()
        out.update({"min": _iso(self.min), "max": _iso(self.max)})
        return out


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class _Other(_Column):
    """Lists, structs and other nested values: nulls only."""

    def fold(self, values: pa.Array) -> None:
        return


_KINDS: dict[str, type[_Column]] = {
    "numeric": _Numeric,
    "categorical": _Categorical,
    "temporal": _Temporal,
    "other": _Other,
}


# Readers -----------------------------------------------------------------------------------------

_SIMPLE_TYPES = {
    "int64": pa.int64(),
    "double": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}


class _CountingFile:
    """Knows how far the reader got, for progress in bytes (pyarrow reads through it in blocks)."""

    def __init__(self, source: FileSource) -> None:
        self.handle: BinaryIO = source.open()  # closed by _batches

    def position(self) -> int:
        return self.handle.tell()


def _batches(
    source: FileSource,
    format: str,
    options: ProfileOptions,
    schema: list[dict[str, str]] | None,
    columns: list[str] | None = None,
) -> Iterator[tuple[pa.RecordBatch, Callable[[], int]]]:
    """Record batches of at most about `block_bytes`, each with a way to ask how many bytes were read."""
    if format == DatasetFormat.PARQUET:
        # pyarrow seeks to the footer, then to each column chunk it needs: the source must be seekable.
        with source.open() as handle:
            parquet = pq.ParquetFile(handle)
            metadata = parquet.metadata
            rows_total = max(metadata.num_rows, 1)
            uncompressed = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
            per_row = max(uncompressed / rows_total, 1.0)
            batch_rows = max(64, int(options.block_bytes / per_row))
            size = source.size
            done = 0
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                done += batch.num_rows
                yield batch, lambda done=done: int(size * done / rows_total)
        return
    counting = _CountingFile(source)
    try:
        if format == DatasetFormat.CSV:
            types = {c["name"]: _SIMPLE_TYPES[c["type"]] for c in schema or [] if c.get("type") in _SIMPLE_TYPES}
            reader = pa_csv.open_csv(
                counting.handle,
                # One thread: on 2 cores the threaded reader is no faster and would compete with the worker.
                read_options=pa_csv.ReadOptions(use_threads=False, block_size=options.block_bytes),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=columns or []),
            )
        elif format == DatasetFormat.JSONL:
            reader = pa_json.open_json(
                counting.handle,
                read_options=pa_json.ReadOptions(use_threads=False, block_size=options.block_bytes),
                parse_options=pa_json.ParseOptions(newlines_in_values=False),
            )
        else:
            raise ProfileError(f"{format!r} datasets have no columns to profile.")
        for batch in reader:
            if columns is not None and format == DatasetFormat.JSONL:
                batch = batch.select([c for c in columns if c in batch.schema.names])
            yield batch, counting.position
    except pa.ArrowInvalid as exc:
        raise ProfileError(f"The file could not be read for profiling: {exc}") from None
    finally:
        counting.handle.close()


# The profile -------------------------------------------------------------------------------------


@dataclass
class _Run:
    source: FileSource
    format: str
    options: ProfileOptions
    schema: list[dict[str, str]] | None
    progress: Progress | None
    on_batch: BatchHook | None
    size: int = 0
    stats: ReaderStats = field(default_factory=ReaderStats)
    last_report: float = 0.0

    def report(self, done: int, passes: int, current: int, *, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self.last_report < self.options.progress_interval:
            return
        self.last_report = now
        total = self.size * passes
        processed = min(self.size * (current - 1) + done, total)
        self.progress(processed, total, f"pass {current} of {passes}: {_mb(done)} of {_mb(self.size)}")

    def batches(self, columns: list[str] | None = None) -> Iterator[tuple[pa.RecordBatch, int]]:
        for batch, position in _batches(self.source, self.format, self.options, self.schema, columns):
            self.stats.saw(batch)
            if self.on_batch is not None:
                self.on_batch(batch)
            yield batch, position()


def _mb(count: int) -> str:
    return f"{count / 1e6:,.1f} MB"


def _caps(options: ProfileOptions, columns: int) -> dict[str, int]:
    per_column = max(columns, 1)
    return {
        "distinct": max(MIN_PER_COLUMN, min(options.distinct_cap, DISTINCT_BUDGET // per_column)),
        "sample": max(MIN_PER_COLUMN, min(options.sample_size, SAMPLE_BUDGET // per_column)),
    }


def profile_file(
    path: Path | str | FileSource,
    format: str,
    *,
    schema: list[dict[str, str]] | None = None,
    options: ProfileOptions | None = None,
    progress: Progress | None = None,
    on_batch: BatchHook | None = None,
) -> dict[str, Any]:
    """Profile a CSV, Parquet or JSON Lines file; returns the JSON-able profile.

    `schema` (the version's recorded `[{name, type}]`) pins CSV column types to what inspection found,
    so a column widened deep in the file is read the same way here. `progress(done, total, message)`
    is called at most twice a second with bytes (two passes count the file twice); `on_batch` sees
    every block the reader materialises.
    """
    source = _source(path)
    options = options or ProfileOptions()
    if format not in (DatasetFormat.CSV, DatasetFormat.PARQUET, DatasetFormat.JSONL):
        raise ProfileError(f"{format!r} datasets have no columns to profile.")
    started = time.perf_counter()
    run = _Run(source, format, options, schema, progress, on_batch, size=source.size)
    columns: list[_Column] | None = None
    rows = 0
    passes = 2
    for batch, position in run.batches():
        if columns is None:
            caps = _caps(options, batch.num_columns)
            columns = [
                _KINDS[column_kind(f.type)](f.name, f.type, options, i, caps) for i, f in enumerate(batch.schema)
            ]
        for column, array in zip(columns, batch.columns, strict=True):
            column.add(_plain(array))
        rows += batch.num_rows
        run.report(position, passes, 1)
    columns = columns or []
    numeric = [c for c in columns if isinstance(c, _Numeric) and c.min is not None]
    if numeric:
        for column in numeric:
            column.prepare_histogram()
        names = [c.name for c in numeric]
        by_name = {c.name: c for c in numeric}
        for batch, position in run.batches(names):
            for name, array in zip(batch.schema.names, batch.columns, strict=True):
                if name in by_name:
                    by_name[name].histogram_add(_plain(array))
            run.report(position, passes, 2)
    else:
        passes = 1
    run.report(run.size, passes, passes, force=True)
    seconds = time.perf_counter() - started
    profile = {
        "profile_format": PROFILE_FORMAT,
        "format": format,
        "rows": rows,
        "bytes": run.size,
        "columns": [c.result() for c in columns],
        "method": {
            "passes": passes,
            "block_bytes": options.block_bytes,
            "distinct": f"exact up to {_caps(options, len(columns))['distinct']:,} distinct values per column, "
            f"then a KMV sketch (k={options.kmv_k}, about {100 / math.sqrt(options.kmv_k - 2):.1f}% standard error)",
            "quantiles": f"linear interpolation over every value up to {_caps(options, len(columns))['sample']:,} "
            "values per column, else over a uniform random sample of that many (approximate)",
            "histogram": f"{options.bins} equal-width bins between min and max (one per integer for narrow integer "
            "ranges), counted in a second pass",
            "std": "sample standard deviation (n - 1), streamed with Chan's parallel merge",
            "top": f"top {options.top_k} values, exact while the distinct values fit under the cap",
        },
        "reader": {"blocks": run.stats.blocks, "max_block_rows": run.stats.max_block_rows},
        "seconds": round(seconds, 3),
        "mb_per_second": round(run.size / 1e6 / seconds, 1) if seconds > 0 else None,
    }
    json.dumps(profile, allow_nan=False)  # a NaN or infinity that slipped through must fail here, not in the DB
    return profile
