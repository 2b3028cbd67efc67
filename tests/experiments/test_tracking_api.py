"""MLflow REST API behaviour the client depends on: shapes, limits, NaN, idempotency, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from experiments import services
from experiments.models import LatestMetric, Metric, Param, Run
from experiments.services import MetricPoint

API = "/api/2.0/mlflow/"


@pytest.fixture
def api(editor: Any) -> Client:
    client = Client()
    client.force_login(editor)
    return client


@pytest.fixture
def run(editor: Any) -> Run:
    experiment = services.create_experiment("api", owner=editor)
    return services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])


def post(client: Client, path: str, body: Any) -> Any:
    return client.post(API + path, json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json")  # fmt: skip


def test_success_is_exactly_200_with_string_ids(api: Client) -> None:
    response = post(api, "experiments/create", {"name": "e1"})
    assert response.status_code == 200
    experiment_id = response.json()["experiment_id"]
    assert isinstance(experiment_id, str)
    run = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": 1000}).json()["run"]
    assert run["info"]["experiment_id"] == experiment_id and run["info"]["start_time"] == 1000
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/{experiment_id}/{run['info']['run_id']}/artifacts"
    assert {"key": "mlflow.runName", "value": run["info"]["run_name"]} in run["data"]["tags"]


def test_nan_and_infinity_travel_as_strings_and_come_back_unchanged(api: Client, run: Run) -> None:
    metrics = [
        {"key": "a", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "b", "value": "Infinity", "timestamp": 1, "step": 0},
        {"key": "c", "value": "-Infinity", "timestamp": 1, "step": 0},
        {"key": "d", "value": 1.5, "timestamp": 1, "step": 0},
    ]
    assert post(api, "runs/log-batch", {"run_id": run.pk, "metrics": metrics}).status_code == 200
    data = api.get(API + "runs/get", {"run_id": run.pk}).json()["run"]["data"]
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": 1.5}
    history = api.get(API + "metrics/get-history", {"run_id": run.pk, "metric_key": "a"}).json()
    assert history["metrics"][0]["value"] == "NaN"


def test_every_double_and_every_valid_key_survives_a_batch_exactly(api: Client, run: Run) -> None:
    values = [0.1, 1 / 3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, -1e-7, 3, 10**15, "Infinity",
              "-Infinity", "NaN", "7.5"]  # fmt: skip
    keys = ["plain", "with space", "a/b:c-d.e_f", "ünïcødé", "x" * 250]
    metrics = [
        {"key": key, "value": value, "timestamp": str(2**62 + i), "step": str(i) if i % 2 else i}
        for key in keys
        for i, value in enumerate(values)
    ]
    assert post(api, "runs/log-batch", {"run_id": run.pk, "metrics": metrics}).status_code == 200
    for key in keys:
        history = api.get(API + "metrics/get-history", {"run_id": run.pk, "metric_key": key}).json()["metrics"]
        assert [m["value"] for m in history] == [
            v if isinstance(v, str) and v != "7.5" else float(v) for v in values
        ], key
        assert [int(m["timestamp"]) for m in history] == [2**62 + i for i in range(len(values))]
        assert [int(m["step"]) for m in history] == list(range(len(values)))


def test_a_negative_timestamp_is_refused_in_a_batch_too(api: Client, run: Run) -> None:
    metrics = [
        {"key": "a", "value": 1, "timestamp": 1, "step": 0},
        {"key": "a", "value": 1, "timestamp": -1, "step": 1},
    ]
    response = post(api, "runs/log-batch", {"run_id": run.pk, "metrics": metrics})
    assert response.status_code == 400 and "metrics[1].timestamp" in response.json()["message"]
    assert not Metric.objects.filter(run=run).exists()


def test_a_retried_batch_stores_nothing_twice(api: Client, run: Run) -> None:
    body = {
        "run_id": run.pk,
        "metrics": [{"key": "loss", "value": 0.1 * i, "timestamp": 100 + i, "step": i} for i in range(50)],
        "params": [{"key": "lr", "value": "0.01"}],
        "tags": [{"key": "team", "value": "a"}],
    }
    for _ in range(3):
        assert post(api, "runs/log-batch", body).status_code == 200
    assert Metric.objects.filter(run=run).count() == 50
    assert Param.objects.filter(run=run).count() == 1


def test_the_latest_value_only_moves_forward(run: Run) -> None:
    services.log_metrics(run, [MetricPoint("loss", 0.5, 10, 5)])
    services.log_metrics(run, [MetricPoint("loss", 0.9, 99, 1)])  # an older step arriving late
    latest = LatestMetric.objects.get(run=run, key="loss")
    assert (latest.value, latest.step) == (0.5, 5)
    services.log_metrics(run, [MetricPoint("loss", 0.4, 11, 5), MetricPoint("loss", 0.3, 12, 6)])
    latest.refresh_from_db()
    assert (latest.value, latest.step, latest.timestamp) == (0.3, 6, 12)


def test_params_are_immutable(api: Client, run: Run) -> None:
    assert post(api, "runs/log-parameter", {"run_id": run.pk, "key": "lr", "value": "1"}).status_code == 200
    assert post(api, "runs/log-parameter", {"run_id": run.pk, "key": "lr", "value": "1"}).status_code == 200
    response = post(api, "runs/log-parameter", {"run_id": run.pk, "key": "lr", "value": "2"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001}, "at most 1000 metrics"),
        ({"params": [{"key": f"p{i}", "value": "1"} for i in range(101)]}, "at most 100 params"),
        ({"tags": [{"key": f"t{i}", "value": "1"} for i in range(101)]}, "at most 100 tags"),
        ({"params": [{"key": "k" * 251, "value": "1"}]}, "exceeds the maximum length of 250"),
        ({"params": [{"key": "p", "value": "v" * 6001}]}, "exceeds the maximum length of 6000"),
        ({"params": [{"key": "../escape", "value": "1"}]}, "must not resolve to other names"),
        ({"metrics": [{"key": "m", "value": "lots", "timestamp": 1}]}, "must be a double"),
        ({"metrics": [{"key": "m", "value": 1, "timestamp": -1}]}, "nonnegative"),
        ({"metrics": [{"key": "bad|name", "value": 1, "timestamp": 1}]}, "Names may only contain"),
    ],
)
def test_bad_batches_get_mlflows_400_and_change_nothing(api: Client, run: Run, body: Any, message: str) -> None:
    response = post(api, "runs/log-batch", {"run_id": run.pk, **body})
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]
    assert not Metric.objects.filter(run=run).exists() and not Param.objects.filter(run=run).exists()


def test_a_body_over_one_megabyte_is_refused(api: Client, run: Run) -> None:
    body = json.dumps({"run_id": run.pk, "tags": [{"key": "t", "value": "x" * 1_100_000}]})
    response = post(api, "runs/log-batch", body)
    assert response.status_code == 400
    assert "at most 1000000 bytes" in response.json()["message"]


def test_malformed_json_is_a_400_not_a_500(api: Client) -> None:
    response = post(api, "experiments/create", "{nope")
    assert response.status_code == 400 and response.json()["error_code"] == "BAD_REQUEST"


def test_json_nested_beyond_the_parsers_depth_is_a_400_not_a_500(api: Client) -> None:
    response = post(api, "experiments/create", "[" * 200_000)
    assert response.status_code == 400 and response.json()["error_code"] == "BAD_REQUEST"


def test_bodies_the_strict_parser_refuses_are_still_read_as_before(api: Client, run: Run) -> None:
    """Bare NaN and Infinity (Python's json.dumps writes them), and a body in UTF-16."""
    body = '{"run_id": "%s", "metrics": [{"key": "a", "value": NaN, "timestamp": 1, "step": 0},'
    body += ' {"key": "b", "value": -Infinity, "timestamp": 1, "step": 0}]}'
    assert post(api, "runs/log-batch", body % run.pk).status_code == 200
    utf16 = json.dumps({"run_id": run.pk, "key": "c", "value": 0.5, "timestamp": 1}).encode("utf-16")
    response = api.post(API + "runs/log-metric", utf16, content_type="application/json")
    assert response.status_code == 200, response.content
    stored = {m.key: (m.is_nan, m.value) for m in Metric.objects.filter(run=run)}
    assert stored == {"a": (True, 0.0), "b": (False, float("-inf")), "c": (False, 0.5)}


def test_missing_things_are_404_resource_does_not_exist(api: Client) -> None:
    assert api.get(API + "runs/get", {"run_id": "0" * 32}).json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    response = api.get(API + "experiments/get", {"experiment_id": "987654"})
    assert response.status_code == 404
    assert api.get(API + "experiments/get", {"experiment_id": "abc"}).status_code == 400


def test_a_client_cannot_choose_where_artifacts_go(api: Client) -> None:
    response = post(api, "experiments/create", {"name": "sneaky", "artifact_location": "file:///etc"})
    assert response.status_code == 400
    assert "artifact_location" in response.json()["message"]


def test_experiment_zero_named_default_always_exists(api: Client) -> None:
    from experiments.models import Experiment

    Experiment.objects.filter(pk=0).delete()
    body = api.get(API + "experiments/get-by-name", {"experiment_name": "Default"}).json()
    assert body["experiment"]["experiment_id"] == "0"


def test_metric_history_pages_in_step_order(api: Client, run: Run) -> None:
    services.log_metrics(run, [MetricPoint("loss", float(i), 1000 + i, i) for i in range(25)])
    seen, token = [], None
    while True:
        params = {"run_id": run.pk, "metric_key": "loss", "max_results": 10, **({"page_token": token} if token else {})}
        body = api.get(API + "metrics/get-history", params).json()
        seen += [m["step"] for m in body["metrics"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == list(range(25))


def test_metric_history_pages_through_ties_on_step_and_timestamp_exactly_once(api: Client, run: Run) -> None:
    points = [MetricPoint("loss", float(i), 1000 + i % 2, i // 4) for i in range(23)]
    services.log_metrics(run, points)
    seen, token = [], None
    for _ in range(30):
        params = {"run_id": run.pk, "metric_key": "loss", "max_results": 3, **({"page_token": token} if token else {})}
        body = api.get(API + "metrics/get-history", params).json()
        seen += [(m["step"], m["timestamp"], m["value"]) for m in body["metrics"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert sorted(seen) == seen and len(set(seen)) == 23


@pytest.mark.parametrize(
    "token", ["garbage", "eyJzdGVwIjogMX0=", "eyJzdGVwIjogMSwgInRpbWVzdGFtcCI6IDEsICJpZCI6IDFlMzB9"]
)
def test_a_bad_history_page_token_is_a_400(api: Client, run: Run, token: str) -> None:
    params = {"run_id": run.pk, "metric_key": "loss", "max_results": 3, "page_token": token}
    response = api.get(API + "metrics/get-history", params)
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_bulk_interval_history_samples_evenly_keeping_the_ends(api: Client, run: Run) -> None:
    services.log_metrics(run, [MetricPoint("loss", float(i), 1000 + i, i) for i in range(1000)])
    body = api.get(
        API + "metrics/get-history-bulk-interval", {"run_ids": [run.pk], "metric_key": "loss", "max_results": 11}
    ).json()
    steps = [m["step"] for m in body["metrics"]]
    assert steps == [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]
    assert all(m["run_id"] == run.pk for m in body["metrics"])


def test_server_info_answers_like_mlflow_3(api: Client) -> None:
    body = api.get("/api/3.0/mlflow/server-info").json()
    assert body["store_type"] == "SqlStore" and body["workspaces_enabled"] is False


def test_a_browser_session_alone_cannot_write_through_the_mlflow_api(editor: Any, run: Run) -> None:
    """The MLflow views are csrf_exempt for the client's sake; a session-cookie write still needs CSRF."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(editor)
    response = browser.post(API + "runs/delete", json.dumps({"run_id": run.pk}), content_type="text/plain")
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"
    run.refresh_from_db()
    assert run.lifecycle_stage == "active"
    assert browser.get(API + "runs/get", {"run_id": run.pk}).status_code == 200  # reads are fine


def test_a_token_writes_through_the_mlflow_api_without_csrf(editor: Any, run: Run) -> None:
    from accounts.services import create_api_token

    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {create_api_token(editor, 't').secret}")
    assert post(client, "runs/delete", {"run_id": run.pk}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"datasets": ["not an object"]},
        {"datasets": [{"dataset": "nope"}]},
        {"datasets": [{"dataset": {"name": "d", "digest": "x"}, "tags": "nope"}]},
        {"models": "nope"},
        {"models": [{"model_id": 5}]},
    ],
)
def test_malformed_inputs_are_400s_not_500s(api: Client, run: Run, body: Any) -> None:
    response = post(api, "runs/log-inputs", {"run_id": run.pk, **body})
    assert response.status_code == 400, response.content


def test_an_editor_with_only_read_on_an_experiment_cannot_write_to_it(
    editor: Any, django_user_model: Any, settings: Any, run: Run
) -> None:
    from tests.conftest import make_user

    settings.TRACKING_DEFAULT_PERMISSION = "READ"
    other = make_user(django_user_model, "otto", "editor")
    client = Client()
    client.force_login(other)
    assert client.get(API + "runs/get", {"run_id": run.pk}).status_code == 200
    response = post(client, "runs/log-parameter", {"run_id": run.pk, "key": "k", "value": "v"})
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"


def test_a_batch_with_one_changed_param_stores_none_of_its_params(api: Client, run: Run) -> None:
    services.log_params(run, [("lr", "0.1")])
    body = {"run_id": run.pk, "params": [{"key": "new", "value": "1"}, {"key": "lr", "value": "0.2"}],
            "tags": [{"key": "t", "value": "1"}], "metrics": [{"key": "m", "value": 1, "timestamp": 1}]}  # fmt: skip
    response = post(api, "runs/log-batch", body)
    assert response.status_code == 400
    assert dict(Param.objects.filter(run=run).values_list("key", "value")) == {"lr": "0.1"}
    assert not run.tags.filter(key="t").exists() and not Metric.objects.filter(run=run).exists()


def test_metric_history_without_max_results_returns_every_point_at_once(api: Client, run: Run) -> None:
    services.log_metrics(run, [MetricPoint("loss", i / 7, 1000 + i, i) for i in range(30_000)])
    body = api.get(API + "metrics/get-history", {"run_id": run.pk, "metric_key": "loss"}).json()
    assert len(body["metrics"]) == 30_000 and "next_page_token" not in body
    assert body["metrics"][-1] == {"key": "loss", "value": 29_999 / 7, "timestamp": 30_999, "step": 29_999}


def test_bulk_interval_history_samples_over_the_distinct_steps_when_they_have_gaps(api: Client, run: Run) -> None:
    steps = [0, 1, 2, 10, 11, 50, 51, 52, 90, 100]
    services.log_metrics(run, [MetricPoint("loss", float(s), 1000 + s, s) for s in steps])
    body = api.get(
        API + "metrics/get-history-bulk-interval", {"run_ids": [run.pk], "metric_key": "loss", "max_results": 4}
    ).json()
    assert [m["step"] for m in body["metrics"]] == [0, 10, 51, 100]  # indices 0, 3, 6, 9 of the distinct steps


def test_every_logged_key_is_offered_as_a_column_whichever_call_logged_it(api: Client, editor: Any) -> None:
    from experiments.queries import experiment_keys

    experiment_id = post(api, "experiments/create", {"name": "keys"}).json()["experiment_id"]
    tags = [{"key": "team", "value": "a"}, {"key": "mlflow.source.name", "value": "x.py"}]
    run_id = post(api, "runs/create", {"experiment_id": experiment_id, "tags": tags}).json()["run"]["info"]["run_id"]
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1, "timestamp": 1})
    post(api, "runs/set-tag", {"run_id": run_id, "key": "owner", "value": "erin"})
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "acc", "value": 0.5, "timestamp": 1}, {"key": "loss", "value": 0.5, "timestamp": 2}],
        "params": [{"key": "epochs", "value": "3"}],
        "tags": [{"key": "stage", "value": "dev"}],
    }
    assert post(api, "runs/log-batch", batch).status_code == 200
    # A refused param adds no key.
    assert post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"}).status_code == 400
    assert experiment_keys(int(experiment_id)) == {
        "params": ["epochs", "lr"],
        "metrics": ["acc", "loss"],
        "tags": ["owner", "stage", "team"],
    }
