"""The model server's prediction log written by a child process (what `serve_models` runs): everything
logged before a clean stop is in PostgreSQL, and a refused row does not block the rest."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.utils import timezone

from deployments.models import PredictionLog
from deployments.server.logwriter import ProcessPredictionLogger
from tests.deployments.test_prediction_log import logged_ids
from tests.services import database_url, require_postgres

pytestmark = pytest.mark.e2e


def test_a_clean_stop_writes_everything_logged(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch, revision: Any
) -> None:
    require_postgres()
    monkeypatch.setenv("DATABASE_URL", database_url())  # the spawned writer reads its settings afresh
    writer = ProcessPredictionLogger(0.05)
    writer.start()
    fields = {"deployment_id": revision.deployment_id, "revision_id": revision.pk, "model_version": 1,
              "latency_ms": 1.0, "status": 200}  # fmt: skip
    for i in range(300):
        writer.log(time=timezone.now(), request_id=f"r{i:03d}", **fields)
    writer.log(time=timezone.now(), request_id="nan", inputs={"x": float("nan")}, **fields)  # jsonb refuses it
    writer.log(time=timezone.now(), request_id="last", **fields)
    writer.stop()
    ids = logged_ids()
    assert len(ids) == 301 and ids[-1] == "last" and "nan" not in ids
    assert PredictionLog.objects.count() == 301


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="nice: POSIX")
def test_the_writer_runs_behind_the_server_for_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url())
    own = os.getpriority(os.PRIO_PROCESS, 0)
    writer = ProcessPredictionLogger(0.05)
    writer.start()
    try:
        pid = writer._process.pid
        deadline = time.monotonic() + 30
        while os.getpriority(os.PRIO_PROCESS, pid) != 19 and time.monotonic() < deadline:
            time.sleep(0.05)  # the child sets it first thing, before loading Django
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the server itself is not demoted
    finally:
        writer.stop()
