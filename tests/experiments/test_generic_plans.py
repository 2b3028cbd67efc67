"""The statements the `mlflow` client runs on every call are prepared on their first call and run on
PostgreSQL's generic plan: no call pays the planner (DB_PREPARED_STATEMENTS).

Left to itself, PostgreSQL plans a prepared statement's first five executions for their values, and
keeps doing so when the generic plan's estimated cost looks higher: log-parameter did on every call
(a third of its time; `unnest` of an array parameter is estimated at 100 rows), and a search page's
detail query was planned in parallel for its first executions on each connection, 25-29 ms instead
of 15 over HTTP (docs/performance.md, "Plans"). The portal's connections ask for generic plans.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from experiments import services
from tests.conftest import bearer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan cache"),
]

CALLS = 12


def _post(headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = Client().post(f"/api/2.0/mlflow/{path}", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 200, response.content
    return response.json()


def _plans() -> dict[str, tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in cursor.fetchall()}


@pytest.mark.parametrize("workload", ["log-parameter", "log-metric", "create-run", "search-runs"])
def test_the_hot_statements_run_on_their_generic_plan_from_the_first_call(editor: Any, workload: str) -> None:
    experiment = services.create_experiment(f"plans-{workload}", owner=editor)
    run = services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[("team", "a")])
    services.log_batch(run, metrics=[services.MetricPoint("acc", 0.5, 1, 0)], params=[("lr", "0.1")], tags=[])
    headers = bearer(editor)
    connection.close()  # a connection of its own: its prepared statements are this test's alone
    for i in range(CALLS):
        if workload == "log-parameter":
            _post(headers, "runs/log-parameter", {"run_id": run.pk, "key": f"p{i}", "value": "1"})
        elif workload == "log-metric":
            _post(headers, "runs/log-metric", {"run_id": run.pk, "key": "m", "value": i, "timestamp": 1, "step": i})
        elif workload == "create-run":
            _post(headers, "runs/create", {"experiment_id": str(experiment.pk), "start_time": i})
        else:
            found = _post(headers, "runs/search", {"experiment_ids": [str(experiment.pk)], "max_results": 10})
            assert found["runs"]
    plans = _plans()
    assert plans, "nothing was prepared: the hot paths should bind on the server"
    planned = {statement[:120]: counts for statement, counts in plans.items() if counts[1] or not counts[0]}
    assert not planned, f"planned for the call's values (generic, custom): {planned}"
