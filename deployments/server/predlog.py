"""Prediction logging off the request path: requests append to a queue, a thread writes it in batches.

A request pays for one `deque.append`; the writer thread wakes every MODEL_SERVER_LOG_FLUSH_SECONDS and
bulk-inserts what piled up. When the database is unreachable the batch is kept for the next flush (up to
the queue cap), and `stop()` flushes what is left, so a clean shutdown loses nothing. Rows whose deployment
revision was deleted meanwhile are left out and counted. A batch the database refuses for its content (a
NaN or a NUL character that PostgreSQL's jsonb rejects) is written row by row instead, and only the refused
rows are dropped and counted: one bad row must never block the log that canary judgment reads. Beyond
MAX_QUEUED rows (the database is down for long) the oldest are dropped and counted, rather than the server
running out of memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from datetime import datetime
from functools import cache, partial
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

from deployments.models import DeploymentRevision, PredictionLog

logger = logging.getLogger(__name__)

MAX_QUEUED = 200_000
INSERT_BATCH = 2_000


class PredictionLogger:
    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        # Plain dicts, from the request path to the COPY (a refused batch too, one row at a time).
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
                    orphans = _insert(batch)
            except (OperationalError, InterfaceError):
                # The database is away: keep the rows for the next flush, ahead of newer ones.
                logger.warning("prediction log: writing %d rows failed; will retry", len(batch), exc_info=True)
                with self._append_lock:
                    self._queue.extendleft(reversed(batch))
                close_old_connections()
                return 0
            except DatabaseError:
                return self._write_one_by_one(batch)
            self._refuse(orphans)
            self.written += len(batch) - len(orphans)
            return len(batch) - len(orphans)

    def _refuse(self, rows: list[dict[str, Any]]) -> None:
        """Count and report rows left out: their revision is gone, or belongs to another deployment."""
        if rows:
            self.refused += len(rows)
            logger.warning(
                "prediction log: dropped %d rows whose deployment revision is gone or not theirs (request %s, ...)",
                len(rows), rows[0].get("request_id"),
            )  # fmt: skip

    def _write_one_by_one(self, batch: list[dict[str, Any]]) -> int:
        """Write what the database accepts of a refused batch; drop (and count) the rows it refuses."""
        written = 0
        for index, row in enumerate(batch):
            try:
                with transaction.atomic():
                    orphans = _insert([row])
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
                self._refuse(orphans)
                written += 1 - len(orphans)
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


def _insert(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write a batch, inside the caller's transaction: PostgreSQL's COPY where there is one (several times
    less work for the database than INSERT, and the database shares the machine with the model server),
    else a bulk INSERT. The log has no foreign key constraints (see PredictionLog): rows whose revision
    is gone, or names another deployment than its revision's, are left out and returned."""
    batch, orphans = _live_rows(batch)
    if not batch:
        return orphans
    if connection.vendor != "postgresql":
        PredictionLog.objects.bulk_create([PredictionLog(**row) for row in batch], batch_size=INSERT_BATCH)
        return orphans
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
    return orphans


def _live_rows(batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the rows whose revision exists and belongs to the row's deployment, the others). On PostgreSQL
    the revisions stay locked against deletion (FOR KEY SHARE) until the caller's transaction ends: a
    deletion in progress waits for the rows, and the triggers of migration 0004 then delete them with
    it. Their deployments need no lock of their own: a revision's foreign key keeps its deployment
    until the revision is deleted, and leaving the deployment unlocked keeps flushes from queueing behind
    deploys and rollbacks (which lock it FOR UPDATE). On SQLite the caller's transaction holds the
    database's write lock from its start (transaction_mode IMMEDIATE), so no deletion commits between
    this read and the insert."""
    revision_ids = sorted({row.get("revision_id") for row in batch if isinstance(row.get("revision_id"), int)})
    live: set[tuple[int, int]] = set()
    if revision_ids:
        lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
        placeholders = ", ".join(["%s"] * len(revision_ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, deployment_id FROM {DeploymentRevision._meta.db_table}"  # noqa: S608
                f" WHERE id IN ({placeholders}){lock}",
                revision_ids,
            )
            live = {(revision, deployment) for revision, deployment in cursor.fetchall()}
    kept, orphans = [], []
    for row in batch:
        (kept if (row.get("revision_id"), row.get("deployment_id")) in live else orphans).append(row)
    return kept, orphans


@cache
def _copy_columns() -> list[tuple[str, str, Any, Any]]:
    """(attribute, column, default, preparation) of every column the COPY writes. The writer process
    spends its time in Python, not in the database, and takes it from the model server beside it:
    values the driver adapts as they are (numbers, strings, the keys of the deployment and revision)
    go straight through; an aware datetime and JSON go as PostgreSQL reads them (JSON as the text
    `json.dumps` makes, which is what the ORM sends: 2.0 -> 1.4 ms of Python for a flush of 50 rows);
    anything else goes through its field, as the ORM would write it."""
    columns = []
    for field in PredictionLog._meta.concrete_fields:
        if field.primary_key:
            continue
        plain = isinstance(field, (models.IntegerField, models.FloatField, models.CharField, models.ForeignKey))
        default = field.get_default()  # as a model instance has it: '' for text, None (refused if required)
        prepare = None if plain else field.get_db_prep_save
        if isinstance(field, models.JSONField) and field.encoder is None:
            prepare = _json_text
        elif isinstance(field, models.DateTimeField):
            prepare = partial(_aware_datetime, field.get_db_prep_save)
        columns.append((field.attname, field.column, default, prepare))
    return columns


def _json_text(value: Any, _connection: Any) -> str | None:
    """A JSONField's value as COPY writes it: None is SQL NULL (the field is nullable), anything else
    the JSON text the ORM would send. NaN stays `NaN`, which jsonb refuses, as it refuses the ORM's."""
    return None if value is None else json.dumps(value)


def _aware_datetime(prepare: Any, value: Any, connection_: Any) -> Any:
    """An aware datetime as it is (what the ORM sends to PostgreSQL); anything else through its field."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return prepare(value, connection_)
