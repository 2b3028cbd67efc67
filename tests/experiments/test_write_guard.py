"""The mlflow client's hottest calls: the fast lane through the middleware, and log-metric and
log-parameter checking the run, the permission and writing in one statement (RunGuard)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Role
from experiments import permissions, services
from experiments.models import (
    PERMISSION_RANK,
    Experiment,
    ExperimentPermission,
    LatestMetric,
    Metric,
    Param,
    Permission,
)
from tests.conftest import bearer, make_user

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the guarded statement is PostgreSQL's")


def post(path: str, body: dict[str, Any], **headers: Any) -> Any:
    return Client().post(f"/api/2.0/mlflow/{path}", json.dumps(body), content_type="application/json", **headers)


@pg_only
@pytest.mark.django_db
def test_the_sql_permission_check_agrees_with_the_python_one_everywhere(django_user_model: Any, settings: Any) -> None:
    users = {
        "admin": make_user(django_user_model, "a", Role.ADMIN, is_superuser=True),
        "editor": make_user(django_user_model, "e", Role.EDITOR),
        "viewer": make_user(django_user_model, "v", Role.VIEWER),
        "inactive": make_user(django_user_model, "i", Role.EDITOR, is_active=False),
    }
    other = make_user(django_user_model, "o", Role.EDITOR)
    checked = 0
    for default in ("NO_PERMISSIONS", "READ", "EDIT", "MANAGE"):
        settings.TRACKING_DEFAULT_PERMISSION = default
        for (name, user), owner, grant, experiment_id, level in itertools.product(
            users.items(), ("self", "other", None), (None, "READ", "EDIT", "MANAGE"), (0, 7), ("READ", "EDIT", "MANAGE")
        ):
            owner_id = {"self": user.pk, "other": other.pk, None: None}[owner]
            experiment = Experiment(pk=experiment_id, owner_id=owner_id)
            expected = permissions.level_with_grant(user, experiment, grant) >= PERMISSION_RANK[level]
            sql, params = permissions.sql_allows(user, level)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {sql} FROM (SELECT %s::bigint AS id, %s::int AS owner_id) e,"  # noqa: S608
                    " (SELECT %s::varchar AS level) g",
                    [*params, experiment_id, owner_id, grant],
                )
                got = cursor.fetchone()[0]
            assert got is expected, (name, default, owner, grant, experiment_id, level, got)
            checked += 1
    assert checked == 4 * 4 * 3 * 4 * 2 * 3


@pytest.fixture
def world(editor: Any) -> dict[str, Any]:
    experiment = services.create_experiment("guarded", owner=editor)
    run = services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])
    return {"experiment": experiment, "run": run}


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["reader", "stranger-with-no-default", "viewer-with-edit-grant"])
def test_a_refused_metric_or_param_writes_nothing(
    who: str, world: dict[str, Any], django_user_model: Any, settings: Any
) -> None:
    run = world["run"]
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    user = make_user(django_user_model, "someone", Role.VIEWER if who.startswith("viewer") else Role.EDITOR)
    if who == "reader":
        ExperimentPermission.objects.create(experiment=world["experiment"], user=user, level=Permission.READ)
    if who.startswith("viewer"):
        ExperimentPermission.objects.create(experiment=world["experiment"], user=user, level=Permission.EDIT)
    headers = bearer(user)
    metric = post("runs/log-metric", {"run_id": run.pk, "key": "m", "value": 1, "timestamp": 1, "step": 0}, **headers)
    param = post("runs/log-parameter", {"run_id": run.pk, "key": "p", "value": "1"}, **headers)
    expected = 404 if who.startswith("stranger") else 403
    assert (metric.status_code, param.status_code) == (expected, expected), (metric.content, param.content)
    code = "RESOURCE_DOES_NOT_EXIST" if expected == 404 else "PERMISSION_DENIED"
    assert metric.json()["error_code"] == param.json()["error_code"] == code
    assert not Metric.objects.filter(run=run).exists()
    assert not LatestMetric.objects.filter(run=run).exists()
    assert not Param.objects.filter(run=run).exists()


@pg_only
@pytest.mark.django_db
def test_a_write_the_statement_refuses_but_python_allows_says_so_and_writes_nothing(
    world: dict[str, Any], editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grant revoked and given back between the statement and the lookup that explains the refusal:
    # here the statement's check says no and Python's says yes. The client must not be told it worked.
    monkeypatch.setattr(permissions, "sql_allows", lambda user, level: ("FALSE", []))
    run = world["run"]
    metric = post("runs/log-metric", {"run_id": run.pk, "key": "m", "value": 1, "timestamp": 1}, **bearer(editor))
    param = post("runs/log-parameter", {"run_id": run.pk, "key": "p", "value": "1"}, **bearer(editor))
    for response in (metric, param):
        assert response.status_code == 500 and response.json()["error_code"] == "INTERNAL_ERROR", response.content
    assert not Metric.objects.filter(run=run).exists() and not Param.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_the_owner_and_an_edit_grant_write_and_a_deleted_run_takes_nothing(
    world: dict[str, Any], editor: Any, django_user_model: Any
) -> None:
    run = world["run"]
    member = make_user(django_user_model, "member", Role.EDITOR)
    ExperimentPermission.objects.create(experiment=world["experiment"], user=member, level=Permission.EDIT)
    for step, user in enumerate([editor, member]):
        body = {"run_id": run.pk, "key": "m", "value": step + 0.5, "timestamp": 1, "step": step}
        assert post("runs/log-metric", body, **bearer(user)).status_code == 200
        assert (
            post("runs/log-parameter", {"run_id": run.pk, "key": f"p{step}", "value": "x"}, **bearer(user)).json() == {}
        )
    assert sorted(Metric.objects.filter(run=run).values_list("step", "value")) == [(0, 0.5), (1, 1.5)]
    assert LatestMetric.objects.get(run=run, key="m").value == 1.5
    assert dict(Param.objects.filter(run=run).values_list("key", "value")) == {"p0": "x", "p1": "x"}
    # a changed value is refused and the stored one stays
    changed = post("runs/log-parameter", {"run_id": run.pk, "key": "p0", "value": "y"}, **bearer(editor))
    assert changed.status_code == 400 and "Changing param values is not allowed" in changed.json()["message"]
    services.set_run_lifecycle(run, "deleted", actor=editor)
    for path, body in [
        ("runs/log-metric", {"run_id": run.pk, "key": "m", "value": 9, "timestamp": 1, "step": 9}),
        ("runs/log-parameter", {"run_id": run.pk, "key": "late", "value": "1"}),
    ]:
        response = post(path, body, **bearer(editor))
        assert response.status_code == 400 and "must be in the 'active' state" in response.json()["message"]
    assert Metric.objects.filter(run=run).count() == 2
    assert not Param.objects.filter(run=run, key="late").exists()
    missing = post("runs/log-metric", {"run_id": "f" * 32, "key": "m", "value": 1, "timestamp": 1}, **bearer(editor))
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.django_db
def test_header_authenticated_mlflow_calls_take_the_fast_lane(
    world: dict[str, Any], editor: Any, monkeypatch: Any
) -> None:
    from django.contrib.messages.middleware import MessageMiddleware

    from monitoring import metrics

    def counted() -> float:
        return sum(
            s.value
            for m in metrics.REQUEST_DURATION.collect()
            for s in m.samples
            if s.name.endswith("_count") and s.labels.get("route") == "/api/2.0/mlflow/runs/log-parameter"
        )

    passed: list[str] = []
    monkeypatch.setattr(MessageMiddleware, "process_request", lambda self, request: passed.append(request.path))
    body = {"run_id": world["run"].pk, "key": "p", "value": "1"}
    before = counted()
    fast = post("runs/log-parameter", body, **bearer(editor))
    assert fast.status_code == 200 and passed == []
    assert counted() == before + 1  # timed under its route, as every request is
    # what the skipped middleware would have added is there
    assert fast["X-Frame-Options"] == "DENY" and fast["X-Content-Type-Options"] == "nosniff"
    assert fast["Content-Length"] == str(len(fast.content))
    # a session (a browser) takes the whole chain: a write without a CSRF token is refused
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(editor)
    slow = browser.post("/api/2.0/mlflow/runs/log-parameter", json.dumps(body), content_type="application/json")
    assert passed == ["/api/2.0/mlflow/runs/log-parameter"]
    assert slow.status_code == 403 and slow.json()["error_code"] == "PERMISSION_DENIED"
    # a bad token is the same 401, in MLflow's shape
    bad = post("runs/log-parameter", body, HTTP_AUTHORIZATION="Bearer mlp_nope")
    assert bad.status_code == 401 and bad.json()["error_code"] == "UNAUTHENTICATED"
    # a host outside ALLOWED_HOSTS is refused as everywhere else
    assert post("runs/log-parameter", body, HTTP_HOST="evil.example", **bearer(editor)).status_code == 400
