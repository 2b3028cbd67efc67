"""The unmodified `mlflow` client against a live portal: register, load by version, alias and latest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from registry.models import ModelVersion, RegisteredModel, RegistryEvent, Stage


class AddN:
    """A tiny pyfunc model: adds `n` to every input value (defined in a module so cloudpickle can find it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return model_input + self.n


def _python_model(n: int) -> Any:
    import mlflow.pyfunc

    class Model(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.inner = AddN(n)

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
            return self.inner.predict(context, model_input)

    return Model()


# Stages are deprecated in MLflow, and the client says so on every stage call; the portal still serves them.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

INPUT = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


@pytest.fixture
def mlflow(mlflow_client: Any) -> Any:
    import mlflow

    mlflow.set_experiment("registry-e2e")
    yield mlflow
    if mlflow.active_run():
        mlflow.end_run()


def _log_model(mlflow: Any, n: int) -> str:
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=_python_model(n))
    return run.info.run_id


def _predict(mlflow: Any, uri: str) -> list[float]:
    return mlflow.pyfunc.load_model(uri).predict(INPUT)["x"].tolist()


def test_a_registered_model_loads_by_version_alias_and_latest(mlflow: Any, mlflow_client: Any) -> None:
    first_run = _log_model(mlflow, 10)
    registered = mlflow.register_model(f"runs:/{first_run}/model", "adder")
    assert registered.name == "adder" and registered.version == "1" and registered.status == "READY"
    assert registered.run_id == first_run
    stored = ModelVersion.objects.get(model__name="adder", version=1)
    assert stored.source.startswith("models:/m-") and stored.storage_location.startswith("mlflow-artifacts:/")
    assert stored.logged_model_id == stored.source.removeprefix("models:/")

    assert _predict(mlflow, "models:/adder/1") == [11.0, 12.0, 13.0]
    mlflow_client.set_registered_model_alias("adder", "champion", "1")
    assert _predict(mlflow, "models:/adder@champion") == [11.0, 12.0, 13.0]

    second_run = _log_model(mlflow, 100)
    assert mlflow.register_model(f"runs:/{second_run}/model", "adder").version == "2"
    assert _predict(mlflow, "models:/adder/latest") == [101.0, 102.0, 103.0]
    assert _predict(mlflow, "models:/adder@champion") == [11.0, 12.0, 13.0]  # the alias did not move
    assert mlflow_client.get_model_version_by_alias("adder", "champion").version == "1"
    assert mlflow_client.get_model_version_download_uri("adder", "2") == stored.storage_location.replace(
        stored.storage_location.split("/")[3], ModelVersion.objects.get(version=2).storage_location.split("/")[3]
    )

    mlflow_client.set_registered_model_alias("adder", "champion", "2")
    assert _predict(mlflow, "models:/adder@champion") == [101.0, 102.0, 103.0]
    model = mlflow_client.get_registered_model("adder")
    assert model.aliases == {"champion": "2"}
    moves = RegistryEvent.objects.filter(kind=RegistryEvent.Kind.ALIAS_SET).order_by("timestamp", "id")
    assert [(e.alias, e.from_value, e.to_value, e.actor_name) for e in moves] == [
        ("champion", "", "1", "erin"),
        ("champion", "1", "2", "erin"),
    ]


def test_a_model_logged_into_the_run_artifacts_registers_from_its_mlflow_artifacts_uri(
    mlflow: Any, mlflow_client: Any, tmp_path: Path
) -> None:
    mlflow.pyfunc.save_model(tmp_path / "saved", python_model=_python_model(1))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "saved"), "exported")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/exported", "exported-adder")
    assert version.source == f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.run_id}/artifacts/exported"
    assert version.run_id == run.info.run_id
    assert _predict(mlflow, "models:/exported-adder/1") == [2.0, 3.0, 4.0]


def test_the_client_searches_transitions_renames_and_deletes(mlflow: Any, mlflow_client: Any) -> None:
    run_id = _log_model(mlflow, 1)
    for name in ("churn", "churn-v2", "fraud"):
        mlflow.register_model(f"runs:/{run_id}/model", name)
    mlflow.register_model(f"runs:/{run_id}/model", "churn")  # version 2 of churn

    names = [m.name for m in mlflow_client.search_registered_models(filter_string="name LIKE 'churn%'")]
    assert names == ["churn", "churn-v2"]
    assert [m.name for m in mlflow_client.search_registered_models(filter_string="name ILIKE 'FRAUD'")] == ["fraud"]
    assert [m.name for m in mlflow_client.search_registered_models(filter_string="name = 'fraud'")] == ["fraud"]
    by_update = mlflow_client.search_registered_models(order_by=["last_updated_timestamp DESC"], max_results=1)
    assert [m.name for m in by_update] == ["churn"] and by_update.token
    rest = mlflow_client.search_registered_models(
        order_by=["last_updated_timestamp DESC"], max_results=10, page_token=by_update.token
    )
    assert [m.name for m in rest] == ["fraud", "churn-v2"]
    versions = mlflow_client.search_model_versions("name = 'churn'")
    assert [v.version for v in versions] == ["2", "1"]
    assert {v.name for v in mlflow_client.search_model_versions(f"run_id = '{run_id}'")} == {
        "churn",
        "churn-v2",
        "fraud",
    }

    staged = mlflow_client.transition_model_version_stage("churn", "1", "Production")
    assert staged.current_stage == "Production"
    mlflow_client.transition_model_version_stage("churn", "2", "production", archive_existing_versions=True)
    assert mlflow_client.get_model_version("churn", "1").current_stage == "Archived"
    latest = mlflow_client.get_latest_versions("churn", stages=["Production"])
    assert [(v.version, v.current_stage) for v in latest] == [("2", "Production")]
    assert {(v.version, v.current_stage) for v in mlflow_client.get_latest_versions("churn")} == {
        ("1", "Archived"),
        ("2", "Production"),
    }
    assert _predict(mlflow, "models:/churn/Production") == [2.0, 3.0, 4.0]
    stages = RegistryEvent.objects.filter(model__name="churn", kind=RegistryEvent.Kind.STAGE_CHANGED)
    assert sorted((e.version, e.from_value, e.to_value) for e in stages) == [
        (1, "None", "Production"),
        (1, "Production", "Archived"),
        (2, "None", "Production"),
    ]

    mlflow_client.update_registered_model("churn", description="predicts churn")
    mlflow_client.update_model_version("churn", "2", description="retrained")
    mlflow_client.set_registered_model_tag("churn", "team", "growth")
    mlflow_client.set_model_version_tag("churn", "2", "validated", "yes")
    mlflow_client.rename_registered_model("churn", "churn-classifier")
    renamed = mlflow_client.get_registered_model("churn-classifier")
    assert renamed.name == "churn-classifier" and renamed.description == "predicts churn"
    assert renamed.tags == {"team": "growth"}
    version = mlflow_client.get_model_version("churn-classifier", "2")
    assert (version.description, version.tags, version.current_stage) == (
        "retrained",
        {"validated": "yes"},
        Stage.PRODUCTION,
    )
    mlflow_client.delete_model_version_tag("churn-classifier", "2", "validated")
    mlflow_client.delete_registered_model_tag("churn-classifier", "team")

    mlflow_client.delete_model_version("churn-classifier", "1")
    assert [v.version for v in mlflow_client.search_model_versions("name = 'churn-classifier'")] == ["2"]
    assert mlflow.register_model(f"runs:/{run_id}/model", "churn-classifier").version == "3"  # never reused
    mlflow_client.delete_registered_model("churn-classifier")
    assert not RegisteredModel.objects.filter(name="churn-classifier").exists()
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as caught:
        mlflow_client.get_registered_model("churn-classifier")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
