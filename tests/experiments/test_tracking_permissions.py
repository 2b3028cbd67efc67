"""Every MLflow tracking route, as the experiment's owner, a reader and an outsider.

The table must name every route in the `mlflow` URL namespace, so a route added without a
permission rule fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from experiments import services
from experiments.models import Run
from experiments.services import MetricPoint
from tests.conftest import make_user
from tests.urlwalk import all_routes


@dataclass
class World:
    experiment_id: str
    run_id: str


Payload = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    level: str  # READ, EDIT or MANAGE
    payload: Payload


def _run(w: World) -> dict[str, Any]:
    return {"run_id": w.run_id}


CASES = [
    Case("create-experiment", "POST", "EDITOR", lambda w: {"name": "fresh"}),
    Case("get-experiment", "GET", "READ", lambda w: {"experiment_id": w.experiment_id}),
    Case("get-experiment-by-name", "GET", "READ", lambda w: {"experiment_name": "owned"}),
    Case("search-experiments", "POST", "LIST", lambda w: {}),
    Case("update-experiment", "POST", "EDIT", lambda w: {"experiment_id": w.experiment_id, "new_name": "renamed"}),
    Case("delete-experiment", "POST", "MANAGE", lambda w: {"experiment_id": w.experiment_id}),
    Case("restore-experiment", "POST", "MANAGE", lambda w: {"experiment_id": w.experiment_id}),
    Case("set-experiment-tag", "POST", "EDIT", lambda w: {"experiment_id": w.experiment_id, "key": "k", "value": "v"}),
    Case("delete-experiment-tag", "POST", "EDIT", lambda w: {"experiment_id": w.experiment_id, "key": "keep"}),
    Case("create-run", "POST", "EDIT", lambda w: {"experiment_id": w.experiment_id}),
    Case("get-run", "GET", "READ", _run),
    Case("update-run", "POST", "EDIT", lambda w: {"run_id": w.run_id, "status": "FINISHED", "end_time": 5}),
    Case("delete-run", "POST", "EDIT", _run),
    Case("restore-run", "POST", "EDIT", _run),
    Case("search-runs", "POST", "LIST", lambda w: {"experiment_ids": [w.experiment_id]}),
    Case("log-metric", "POST", "EDIT", lambda w: {**_run(w), "key": "m", "value": 1, "timestamp": 1, "step": 0}),
    Case("log-param", "POST", "EDIT", lambda w: {**_run(w), "key": "p", "value": "1"}),
    Case("set-tag", "POST", "EDIT", lambda w: {**_run(w), "key": "t", "value": "1"}),
    Case("delete-tag", "POST", "EDIT", lambda w: {**_run(w), "key": "keep"}),
    Case("log-batch", "POST", "EDIT", lambda w: {**_run(w), "metrics": [{"key": "b", "value": 1, "timestamp": 1}]}),
    Case(
        "log-inputs",
        "POST",
        "EDIT",
        lambda w: {
            **_run(w),
            "datasets": [{"dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{}"}}],
        },
    ),
    Case("log-outputs", "POST", "EDIT", lambda w: {**_run(w), "models": []}),
    Case("get-metric-history", "GET", "READ", lambda w: {**_run(w), "metric_key": "loss"}),
    Case("get-history-bulk-interval", "GET", "READ", lambda w: {"run_ids": [w.run_id], "metric_key": "loss"}),
]
CASE_NAMES = {c.name for c in CASES}


def test_every_tracking_route_has_a_permission_case() -> None:
    routes = {r.name.split(":", 1)[1] for r in all_routes() if r.name.startswith("mlflow:")}
    untested = routes - CASE_NAMES - EXEMPT_ROUTES
    assert not untested, f"add permission cases for {sorted(untested)}"


# Routes covered by their own permission tests (artifacts, logged models) are listed here.
EXEMPT_ROUTES: set[str] = {
    # tests/experiments/test_artifacts.py and test_logged_models.py check these as owner, reader, outsider.
    "list-run-artifacts",
    "create-logged-model",
    "search-logged-models",
    "logged-model",
    "set-logged-model-tags",
    "delete-logged-model-tag",
    "log-logged-model-params",
    "list-logged-model-artifacts",
    "get-logged-model-artifact",
}


@pytest.fixture
def world(editor: Any, settings: Any) -> World:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    experiment = services.create_experiment("owned", owner=editor, tags=[("keep", "1")])
    run = services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[("keep", "1")])
    services.log_metrics(run, [MetricPoint("loss", 0.5, 1, 0)])
    return World(str(experiment.pk), run.pk)


def _call(client: Client, case: Case, world: World) -> Any:
    payload = case.payload(world)
    path = f"/api/2.0/mlflow/{_PATHS[case.name]}"
    if case.method == "GET":
        return client.get(path, payload)
    return client.post(path, json.dumps(payload), content_type="application/json")


_PATHS = {r.name.split(":", 1)[1]: r.path.removeprefix("/api/2.0/mlflow/") for r in all_routes()
          if r.name.startswith("mlflow:")}  # fmt: skip


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_owner_may_do_everything(case: Case, world: World, editor: Any) -> None:
    response = _call(_client(editor), case, world)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_reader_may_read_but_not_write(case: Case, world: World, django_user_model: Any, settings: Any) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "READ"
    reader = make_user(django_user_model, "rita", "viewer")
    response = _call(_client(reader), case, world)
    if case.level in ("READ", "LIST"):
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert Run.objects.get(pk=world.run_id).lifecycle_stage == "active"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_an_outsider_sees_nothing(case: Case, world: World, django_user_model: Any) -> None:
    outsider = make_user(django_user_model, "oscar", "editor")
    response = _call(_client(outsider), case, world)
    if case.level == "LIST":
        assert response.status_code == 200
        body = response.json()
        assert body.get("runs", []) == [] and all(e["name"] != "owned" for e in body.get("experiments", []))
    elif case.level == "EDITOR":
        assert response.status_code == 200  # any editor may create experiments of their own
    else:
        assert response.status_code == 404, response.content
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_member_with_an_edit_grant_may_log_but_not_delete_the_experiment(
    world: World, django_user_model: Any
) -> None:
    from experiments.models import ExperimentPermission

    member = make_user(django_user_model, "mia", "editor")
    ExperimentPermission.objects.create(experiment_id=int(world.experiment_id), user=member, level="EDIT")
    client = _client(member)
    by_name = {c.name: c for c in CASES}
    assert _call(client, by_name["log-metric"], world).status_code == 200
    assert _call(client, by_name["delete-experiment"], world).status_code == 403


def test_admins_bypass_experiment_permissions(world: World, admin_user: Any) -> None:
    by_name = {c.name: c for c in CASES}
    assert _call(_client(admin_user), by_name["delete-experiment"], world).status_code == 200
