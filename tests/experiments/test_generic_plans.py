"""The statements the `mlflow` client runs on every call are prepared once per connection and then
run on PostgreSQL's generic plan, not planned afresh each time.

PostgreSQL plans a prepared statement's first five executions for their values, then keeps the
generic plan unless its estimated cost looks higher. One that never settles pays the planner on
every call: log-parameter did, a third of its time, because `unnest` of an array parameter is
estimated at 100 rows (docs/performance.md, "Generic plans").

The search page's detail queries are left out: on this test's nearly empty tables a custom plan is
honestly cheaper (on 10,000 runs they settle too, as bench/tracking.py's database shows)."""

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

CALLS = 15  # psycopg prepares at the 5th execution; PostgreSQL settles after 5 more


def _post(headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = Client().post(f"/api/2.0/mlflow/{path}", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 200, response.content
    return response.json()


def _plans() -> dict[str, tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in cursor.fetchall()}


@pytest.mark.parametrize("workload", ["log-parameter", "log-metric", "create-run"])
def test_the_hot_statements_settle_on_a_generic_plan(editor: Any, workload: str) -> None:
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
        else:
            _post(headers, "runs/create", {"experiment_id": str(experiment.pk), "start_time": i})
    plans = _plans()
    assert plans, "nothing was prepared: the hot paths should bind on the server"
    replanned = {statement[:120]: counts for statement, counts in plans.items() if counts[0] == 0}
    assert not replanned, f"planned afresh on every call (generic, custom): {replanned}"
