"""The MLflow endpoints skip Django's per-request `SELECT 1` and instead survive a connection that
died since the last request (a database restart) by reconnecting once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from experiments import services
from experiments.models import Metric
from tests.conftest import bearer
from tests.services import drop_connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a PostgreSQL backend"),
]


def log_metric(headers: dict[str, str], run_id: str, step: int) -> Any:
    body = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": step}
    return Client().post(
        "/api/2.0/mlflow/runs/log-metric", json.dumps(body), content_type="application/json", **headers
    )


def test_a_logging_call_on_a_connection_the_database_dropped_reconnects_and_succeeds(editor: Any) -> None:
    experiment = services.create_experiment("reconnect", owner=editor)
    run = services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])
    headers = bearer(editor)
    assert log_metric(headers, run.pk, 1).status_code == 200
    pid = drop_connection()
    response = log_metric(headers, run.pk, 2)
    assert response.status_code == 200, response.content
    assert list(Metric.objects.filter(run=run).order_by("step").values_list("step", flat=True)) == [1, 2]
    assert connection.connection.info.backend_pid != pid


def test_a_logging_call_on_a_live_connection_sends_no_health_check(editor: Any, monkeypatch: Any) -> None:
    experiment = services.create_experiment("no-select-1", owner=editor)
    run = services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])
    headers = bearer(editor)
    assert log_metric(headers, run.pk, 1).status_code == 200
    checks = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_is_usable())
    connection.health_check_done = False  # as at the start of a new request
    with CaptureQueriesContext(connection) as queries:
        assert log_metric(headers, run.pk, 2).status_code == 200
    assert checks == []
    # One statement: the run, the caller's grant and the insert (see RunGuard); nothing else.
    assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
