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
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection, transaction

from deployments.models import PredictionLog

logger = logging.getLogger(__name__)

MAX_QUEUED = 200_000
INSERT_BATCH = 2_000


class PredictionLogger:
    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        # Plain dicts on the request path; the writer thread builds the model instances.
        self._queue: deque[dict[str, Any] | PredictionLog] = deque()
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
            queued: list[dict[str, Any] | PredictionLog] = []
            with self._append_lock:
                while self._queue and len(queued) < MAX_QUEUED:
                    queued.append(self._queue.popleft())
            batch = [row if isinstance(row, PredictionLog) else PredictionLog(**row) for row in queued]
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

    def _write_one_by_one(self, batch: list[PredictionLog]) -> int:
        """Write what the database accepts of a refused batch; drop (and count) the rows it refuses."""
        written = 0
        for row in batch:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except (OperationalError, InterfaceError):
                with self._append_lock:  # gone mid-way: keep the rest for later
                    self._queue.extendleft(reversed(batch[batch.index(row) :]))
                close_old_connections()
                break
            except DatabaseError as exc:
                self.refused += 1
                logger.warning("prediction log: dropped request %s the database refused: %s", row.request_id, exc)
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


def _insert(batch: list[PredictionLog]) -> None:
    """Write a batch: PostgreSQL's COPY where there is one (several times less work for the database than
    INSERT, and the database shares the machine with the model server), else a bulk INSERT."""
    if connection.vendor != "postgresql":
        PredictionLog.objects.bulk_create(batch, batch_size=INSERT_BATCH)
        return
    fields = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(PredictionLog._meta.db_table)
    # The raw psycopg cursor's errors are not Django's: wrap them, so a refused row reaches the fallback.
    statement = f"COPY {table} ({columns}) FROM STDIN"
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in batch:
            copy.write_row([f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields])
