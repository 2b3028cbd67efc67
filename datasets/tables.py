"""Read the first rows of a tabular dataset version as an Arrow table (for scoring models on a holdout).

Reads block by block from the blob storage (a local file or ranged reads of an object store) and stops
after `max_rows`, so a holdout of any size costs at most that many rows of memory.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from datasets.models import DatasetFormat, DatasetVersion
from datasets.storage import get_storage

BLOCK_BYTES = 4 * 1024 * 1024


class TableReadError(ValueError):
    """The version has no rows to read: a directory dataset, missing bytes, or a parse error."""


def read_head(version: DatasetVersion, *, max_rows: int) -> pa.Table:
    """Up to `max_rows` rows of `version`, every column, in file order."""
    if version.format == DatasetFormat.DIRECTORY:
        raise TableReadError(f"{version} is a directory dataset; a holdout must be CSV, Parquet or JSON Lines")
    try:
        handle = get_storage().open(version.blob_id)
    except FileNotFoundError:
        raise TableReadError(f"the bytes of {version} are missing from the blob storage") from None
    batches: list[pa.RecordBatch] = []
    rows = 0
    try:
        with handle:
            if version.format == DatasetFormat.PARQUET:
                reader = pq.ParquetFile(handle).iter_batches(batch_size=min(max_rows, 65_536), use_threads=False)
            elif version.format == DatasetFormat.CSV:
                reader = pa_csv.open_csv(
                    handle,
                    read_options=pa_csv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES),
                    parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                )
            else:
                reader = pa_json.open_json(handle, read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES))
            for batch in reader:
                batches.append(batch.slice(0, max_rows - rows))
                rows += batches[-1].num_rows
                if rows >= max_rows:
                    break
    except pa.ArrowInvalid as exc:
        raise TableReadError(f"{version} could not be read: {exc}") from None
    if not batches:
        raise TableReadError(f"{version} holds no rows")
    return pa.Table.from_batches(batches)
