"""Prediction logging off the request path: requests append to a queue, a thread writes it in batches.

A request pays for one `deque.append`; the writer thread wakes every MODEL_SERVER_LOG_FLUSH_SECONDS and
bulk-inserts what piled up. When the database is unreachable the batch is kept for the next flush (up to
the queue cap), and `stop()` flushes what is left, so a clean shutdown loses nothing. A batch the database
refuses for its content (a NaN or a NUL character that PostgreSQL's jsonb rejects, a deployment deleted
meanwhile) is written row by row instead, and only the refused rows are dropped and counted: one bad row
must never block the log that canary judgment reads. Beyond MAX_QUEUED rows (the database is down for
long) the oldest are dropped and counted, rather than the server running out of memory.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from functools import cache
from typing import Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    models,
    transaction,
)

from deployments.models import PredictionLog

logger = logging.getLogger(__name__)

MAX_QUEUED = 200_000
INSERT_BATCH = 2_000


class PredictionLogger:
    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        # Plain dicts, from the request path to the COPY: model instances only for a refused batch.
        self._queue: deque[dict[str, Any]] = deque()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._append_lock = threading.Lock()  # request threads append and trim; the writer drains
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.refused = 0

    def log(self, **fields: Any) -> None:
        """Queue one prediction; never blocks on the database."""
        with self._append_lock:
            self._queue.append(fields)
            while len(self._queue) > MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1

    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued so far; returns the rows written."""
        with self._flush_lock:
            batch: list[dict[str, Any]] = []
            with self._append_lock:
                while self._queue and len(batch) < MAX_QUEUED:
                    batch.append(self._queue.popleft())
            if not batch:
                return 0
            try:
                with transaction.atomic():  # all or nothing, so a retried batch is never written twice
                    _insert(batch)
            except (OperationalError, InterfaceError):
                # The database is away: keep the rows for the next flush, ahead of newer ones.
                logger.warning("prediction log: writing %d rows failed; will retry", len(batch), exc_info=True)
                with self._append_lock:
                    self._queue.extendleft(reversed(batch))
                close_old_connections()
                return 0
            except DatabaseError:
                return self._write_one_by_one(batch)
            self.written += len(batch)
            return len(batch)

    def _write_one_by_one(self, batch: list[dict[str, Any]]) -> int:
        """Write what the database accepts of a refused batch; drop (and count) the rows it refuses."""
        written = 0
        for index, row in enumerate(batch):
            try:
                with transaction.atomic():
                    PredictionLog(**row).save(force_insert=True)
            except (OperationalError, InterfaceError):
                with self._append_lock:  # gone mid-way: keep the rest for later
                    self._queue.extendleft(reversed(batch[index:]))
                close_old_connections()
                break
            except DatabaseError as exc:
                self.refused += 1
                logger.warning(
                    "prediction log: dropped request %s the database refused: %s", row.get("request_id"), exc
                )
            else:
                written += 1
        self.written += written
        return written

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.flush_seconds):
                self.flush()
                close_old_connections()

        self._thread = threading.Thread(target=loop, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def _insert(batch: list[dict[str, Any]]) -> None:
    """Write a batch: PostgreSQL's COPY where there is one (several times less work for the database than
    INSERT, and the database shares the machine with the model server), else a bulk INSERT."""
    if connection.vendor != "postgresql":
        PredictionLog.objects.bulk_create([PredictionLog(**row) for row in batch], batch_size=INSERT_BATCH)
        return
    columns = _copy_columns()
    names = ", ".join(connection.ops.quote_name(column) for _, column, _, _ in columns)
    table = connection.ops.quote_name(PredictionLog._meta.db_table)
    # The raw psycopg cursor's errors are not Django's: wrap them, so a refused row reaches the fallback.
    statement = f"COPY {table} ({names}) FROM STDIN"
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in batch:
            copy.write_row(
                [
                    row.get(name, default) if prepare is None else prepare(row.get(name, default), connection)
                    for name, _, default, prepare in columns
                ]
            )


@cache
def _copy_columns() -> list[tuple[str, str, Any, Any]]:
    """(attribute, column, default, preparation) of every column the COPY writes. The writer process
    spends its time in Python, not in the database (about 50 us a row through model instances and
    every field's `get_db_prep_save`): values the driver adapts as they are (numbers, strings, the
    keys of the deployment and revision) go straight through; dates and JSON go through their field,
    as the ORM would write them."""
    columns = []
    for field in PredictionLog._meta.concrete_fields:
        if field.primary_key:
            continue
        plain = isinstance(field, (models.IntegerField, models.FloatField, models.CharField, models.ForeignKey))
        default = field.get_default()  # as a model instance has it: '' for text, None (refused if required)
        columns.append((field.attname, field.column, default, None if plain else field.get_db_prep_save))
    return columns
