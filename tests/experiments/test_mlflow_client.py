"""The unmodified `mlflow` client against a live portal: tracking calls land in the portal's tables."""

from __future__ import annotations

import math
from typing import Any

import pytest

from accounts.services import create_api_token
from experiments.models import LatestMetric, Metric, Param, Run, RunStatus


@pytest.fixture
def mlflow_env(live_server: Any, editor: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", create_api_token(editor, "mlflow").secret)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    mlflow.set_tracking_uri(live_server.url)
    mlflow.set_experiment("Default")  # forget the experiment a previous test made active
    yield mlflow
    if mlflow.active_run():
        mlflow.end_run()


def test_the_mlflow_fluent_api_logs_a_run_into_the_portal(mlflow_env: Any) -> None:
    mlflow = mlflow_env
    mlflow.set_experiment("client-e2e")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("learning_rate", 0.001)
        mlflow.log_params({"epochs": 5, "optimizer": "adam"})
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_metrics({"accuracy": 0.95, "weird": float("nan"), "big": float("inf")})
        mlflow.set_tag("team", "vision")
    run_id = run.info.run_id
    stored = Run.objects.get(pk=run_id)
    assert stored.status == RunStatus.FINISHED and stored.end_time is not None
    assert stored.experiment.name == "client-e2e" and stored.name == "first"
    assert dict(Param.objects.filter(run=stored).values_list("key", "value")) == {
        "learning_rate": "0.001",
        "epochs": "5",
        "optimizer": "adam",
    }
    assert Metric.objects.filter(run=stored, key="loss").count() == 2
    assert LatestMetric.objects.get(run=stored, key="loss").value == 0.25

    fetched = mlflow.get_run(run_id)
    assert fetched.data.metrics["accuracy"] == 0.95
    assert math.isnan(fetched.data.metrics["weird"]) and fetched.data.metrics["big"] == math.inf
    assert fetched.data.params["learning_rate"] == "0.001"
    assert fetched.data.tags["team"] == "vision"
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]


def test_changing_a_param_is_refused_but_logging_it_again_is_fine(mlflow_env: Any) -> None:
    from mlflow.exceptions import MlflowException

    mlflow = mlflow_env
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.1")
        with pytest.raises(MlflowException) as caught:
            mlflow.log_param("lr", "0.2")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in caught.value.message
    assert Param.objects.get(run_id=run.info.run_id).value == "0.1"


def test_experiments_can_be_managed_with_the_client(mlflow_env: Any) -> None:
    from mlflow.exceptions import MlflowException

    client = mlflow_env.MlflowClient()
    experiment_id = client.create_experiment("managed", tags={"owner": "erin"})
    assert client.get_experiment(experiment_id).tags == {"owner": "erin"}
    assert client.get_experiment_by_name("managed").experiment_id == experiment_id
    with pytest.raises(MlflowException) as caught:
        client.create_experiment("managed")
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.rename_experiment(experiment_id, "managed-2")
    client.set_experiment_tag(experiment_id, "stage", "dev")
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    client.restore_experiment(experiment_id)
    experiment = client.get_experiment(experiment_id)
    assert (experiment.name, experiment.lifecycle_stage, experiment.tags["stage"]) == ("managed-2", "active", "dev")
    assert client.get_experiment("0").name == "Default"
