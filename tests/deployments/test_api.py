"""The deployments REST API: viewers read, editors create, deploy and roll back; anonymous gets 401."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from deployments import services
from deployments.models import Deployment
from registry import services as registry_services
from registry.models import RegisteredModel
from tests.conftest import bearer
from tests.datasets.factories import push
from tests.deployments.conftest import add_version, serve_now

API = "/api/v1/deployments/"


def _create(client: Client, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"name": "churn", "registered_model": "churn", "selector": "1", **extra}
    return client.post(API, body, content_type="application/json", **(headers or {}))


def test_an_editor_creates_deploys_and_rolls_back(
    editor_client: Client, registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor)
    add_version(registered_model, editor)
    created = _create(editor_client, environment="production", strategy="canary", canary_steps=[10, 50, 100])
    assert created.status_code == 201, created.content
    assert created.json()["canary_steps"] == [10, 50, 100]
    first = editor_client.post(f"{API}churn/deploy/", {}, content_type="application/json")
    assert first.status_code == 201, first.content
    # The first deploy has nothing to split traffic with: one step, at once (its job validates it first).
    assert {k: first.json()[k] for k in ("model_version", "status", "steps", "strategy", "baseline_version")} == {
        "model_version": 1, "status": "queued", "steps": [100], "strategy": "canary", "baseline_version": None,
    }  # fmt: skip
    deployment = services.current_rollout(Deployment.objects.get(name="churn")).deployment
    services.rollback_rollout(services.current_rollout(deployment), actor=editor)  # stands in for the job here
    first_revision = serve_now(deployment, 1, actor=editor)
    serve_now(deployment, 2, actor=editor)
    detail = editor_client.get(f"{API}churn/").json()
    assert [r["model_version"] for r in detail["active_revisions"]] == [2]
    back = editor_client.post(f"{API}churn/rollback/", {"revision": first_revision.pk}, content_type="application/json")
    assert back.status_code == 200, back.content
    events = editor_client.get(f"{API}churn/events/").json()["results"]
    assert [e["kind"] for e in events][:4] == ["rolled_back", "promoted", "traffic_shifted", "rollout_started"]
    assert events[0]["actor"] == "erin"
    revisions = editor_client.get(f"{API}churn/revisions/").json()["results"]
    assert [(r["model_version"], r["state"]) for r in revisions] == [(2, "retired"), (1, "active"), (1, "retired")]


def test_gates_are_set_when_creating_and_a_bad_one_is_a_400_naming_it(
    editor_client: Client, registered_model: RegisteredModel, editor: Any
) -> None:
    push("holdout", b"x0,x1,label\n1,2,1\n", filename="h.csv", author=editor)
    created = _create(
        editor_client, holdout_dataset="holdout", holdout_version=1, target_column="label", min_accuracy=0.8,
        champion_margin=0.02, latency_budget_ms=25, max_error_rate=0.01, min_canary_requests=100,
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["holdout_dataset_version"] == {"dataset": "holdout", "version": 1}
    assert (body["min_accuracy"], body["latency_budget_ms"], body["min_canary_requests"]) == (0.8, 25.0, 100)
    for extra, field in (
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"holdout_dataset": "holdout"}, "holdout_version"),
        ({"holdout_dataset": "holdout", "holdout_version": 9}, "holdout_version"),
        ({"holdout_dataset": "holdout", "holdout_version": 1}, "target_column"),
        ({"min_accuracy": 0.5}, "holdout_dataset_version"),
    ):
        response = _create(editor_client, name="other", **extra)
        assert response.status_code == 400, (extra, response.content)
        assert response.json()["error"]["field"] == field, extra
    assert Deployment.objects.count() == 1


def test_bad_input_is_a_400_naming_the_field(editor_client: Client, registered_model: RegisteredModel) -> None:
    response = _create(editor_client, strategy="canary", canary_steps=[10, 50])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "canary_steps"
    assert _create(editor_client, registered_model="nope").status_code == 400
    _create(editor_client)
    response = editor_client.post(f"{API}churn/deploy/", {"alias": "champion"}, content_type="application/json")
    assert response.status_code == 400
    assert "champion" in response.json()["error"]["message"]
    response = editor_client.post(f"{API}churn/deploy/", {"alias": "²"}, content_type="application/json")
    assert response.status_code == 400  # a digit to str.isdigit, not to int()


def test_viewers_read_but_may_not_deploy(viewer: Any, registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor)
    services.create_deployment("churn", registered_model, "1", owner=editor)
    client = Client()
    assert client.get(API, **bearer(viewer)).json()["results"][0]["name"] == "churn"
    assert client.post(f"{API}churn/deploy/", {}, content_type="application/json", **bearer(viewer)).status_code == 403
    assert _create(client, bearer(viewer), name="other").status_code == 403


def test_anonymous_callers_get_401(registered_model: RegisteredModel, editor: Any) -> None:
    services.create_deployment("churn", registered_model, "1", owner=editor)
    assert Client().get(API).status_code == 401
    assert Client().post(f"{API}churn/deploy/", {}, content_type="application/json").status_code == 401


def test_the_list_reads_a_fixed_number_of_queries(
    viewer_client: Client, registered_model: RegisteredModel, editor: Any, django_assert_max_num_queries: Any
) -> None:
    add_version(registered_model, editor)
    for i in range(5):
        serve_now(services.create_deployment(f"d{i}", registered_model, "1", owner=editor), actor=editor)
    with django_assert_max_num_queries(8):
        assert len(viewer_client.get(API).json()["results"]) == 5


def test_a_read_grant_on_the_model_is_not_enough_to_deploy_it(db: None, django_user_model: Any) -> None:
    from registry.models import RegisteredModelPermission
    from tests.conftest import make_user

    owner = make_user(django_user_model, "owner-x", "editor")
    other = make_user(django_user_model, "other-x", "editor")
    model = registry_services.create_registered_model("guarded", owner=owner)
    RegisteredModelPermission.objects.create(model=model, user=other, level="READ")
    response = Client(**bearer(other)).post(
        "/api/v1/deployments/", {"name": "guarded-api", "registered_model": "guarded", "selector": "1"},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 403 and "EDIT" in response.json()["error"]["message"]


def test_deleting_a_deployed_model_or_version_is_a_400_naming_the_deployment(
    editor: Any, registered_model: RegisteredModel
) -> None:
    version = add_version(registered_model, editor)
    deployment = services.create_deployment("served-api", registered_model, 1, owner=editor)
    serve_now(deployment, version, actor=editor)
    api = Client(**bearer(editor))
    for path, body in (
        ("model-versions/delete", {"name": registered_model.name, "version": "1"}),
        ("registered-models/delete", {"name": registered_model.name}),
    ):
        response = api.delete(f"/api/2.0/mlflow/{path}", json.dumps(body), content_type="application/json")
        assert response.status_code == 400, response.content
        assert response.json()["error_code"] == "INVALID_STATE" and "served-api" in response.json()["message"]
    assert RegisteredModel.objects.filter(pk=registered_model.pk).exists()
