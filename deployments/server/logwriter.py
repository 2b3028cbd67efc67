"""The prediction log's writer as a separate process, so writing never competes with requests for the GIL.

In-process, the writer thread builds each batch in Python and holds the GIL while it does: at 500
requests/s that added 10-20 ms to the p99 latency of predictions (docs/performance.md). Here a request
thread only appends a small dict to a deque; a sender thread hands what piled up to a `multiprocessing`
queue every SEND_SECONDS as one list (one pickle and one pipe write, not one per request); a child process
(spawned, so it shares no TensorFlow state or locks with the server) runs the same `PredictionLogger` with
its batching, retry and refusal handling, and writes to the database.

Shutdown: `stop()` sends a sentinel and waits for the child, which flushes everything it has first, so a
clean stop loses nothing. A child that died is started again at the next `log()`; what it had read but
not written (at most one flush interval) is lost, and counted by nobody but the log line saying so.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue as queue_module
import threading
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)

STOP = "stop"
QUEUE_LIMIT = 10_000  # lists of rows, each at most SEND_ROWS
SEND_SECONDS = 0.05
SEND_ROWS = 5_000
SENDER_JOIN_SECONDS = 5  # how long a stopping server waits for its sender thread's last hand-over
JOIN_SECONDS = 20  # how long a stopping server waits for the writer's last flush
ORPHAN_CHECK_SECONDS = 1.0  # how soon a writer whose server died notices, whatever the flush interval


def _child(items: Any, flush_seconds: float, settings_module: str) -> None:
    """The writer process: read rows, write them every `flush_seconds` until told to stop."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import signal
    import time

    # The server's process group gets SIGTERM on shutdown; the child waits for the server's STOP instead,
    # so it writes what the server sent last. It exits by itself if the server dies without a STOP.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    # Behind the server for the CPU: on a small machine the writer must not take a core from predictions.
    # Not SCHED_IDLE: at 500 requests/s on 2 cores the cores are nearly busy, a writer that only runs on
    # an idle core fell behind, and the bigger batches it then handed over cost more (docs/performance.md).
    with contextlib.suppress(OSError):
        os.nice(19)

    import django

    django.setup()
    from deployments.server.predlog import PredictionLogger

    writer = PredictionLogger(flush_seconds)
    next_flush = time.monotonic() + flush_seconds
    while True:
        try:
            item = items.get(timeout=min(ORPHAN_CHECK_SECONDS, max(0.01, next_flush - time.monotonic())))
        except queue_module.Empty:
            item = None
            if os.getppid() != parent:
                item = STOP  # orphaned: the server was killed
        if item == STOP:
            writer.flush()
            while writer.pending():
                if not writer.flush():
                    break  # the database is away: nothing more to do on the way out
            return
        if isinstance(item, list):
            for row in item:
                writer.log(**row)
        if time.monotonic() >= next_flush:
            writer.flush()
            next_flush = time.monotonic() + flush_seconds


class ProcessPredictionLogger:
    """The `PredictionLogger` interface (`log`, `start`, `stop`) backed by a writer process."""

    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        self._context = multiprocessing.get_context("spawn")
        self._queue: Any = self._context.Queue(QUEUE_LIMIT)
        self._process: Any = None
        self._lock = threading.Lock()
        self._rows: deque[dict[str, Any]] = deque()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> None:
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            if self._process is not None:
                logger.warning("prediction log writer exited (%s); starting another", self._process.exitcode)
                # A child killed inside Queue.get() dies holding the queue's read lock: a new child on the
                # same queue would never read again. What the old queue still held is lost with it.
                self._queue = self._context.Queue(QUEUE_LIMIT)
            settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
            self._process = self._context.Process(
                target=_child, args=(self._queue, self.flush_seconds, settings_module), name="prediction-log-writer",
                daemon=True,
            )  # fmt: skip
            self._process.start()
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_loop, name="prediction-log-sender", daemon=True)
                self._sender.start()

    def log(self, **fields: Any) -> None:
        """Queue one prediction: one deque append, nothing else on the request path."""
        self._rows.append(fields)

    def _send(self) -> None:
        while self._rows:
            batch = []
            while self._rows and len(batch) < SEND_ROWS:
                batch.append(self._rows.popleft())
            if self._process is None or not self._process.is_alive():
                self.start()
            try:
                self._queue.put_nowait(batch)
            except queue_module.Full:  # the writer cannot keep up for long: drop rather than grow without end
                self.dropped += len(batch)

    def _send_loop(self) -> None:
        while not self._stop.wait(SEND_SECONDS):
            try:
                self._send()
            except Exception:  # never let the sender die: the log would silently stop
                logger.exception("prediction log: handing rows to the writer failed")

    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Writing happens in the child; nothing to do here (kept for the in-process interface)."""
        return 0

    def stop(self) -> None:
        self._stop.set()
        if self._sender is not None:
            self._sender.join(timeout=SENDER_JOIN_SECONDS)
        if self._process is None:
            return
        self._send()
        self._queue.put(STOP)
        if self.dropped:
            logger.warning("prediction log: %d rows were dropped because the writer could not keep up", self.dropped)
        self._process.join(timeout=JOIN_SECONDS)
        if self._process.is_alive():
            logger.warning("prediction log writer did not stop in %d s; killing it", JOIN_SECONDS)
            self._process.kill()  # it ignores SIGTERM by design
