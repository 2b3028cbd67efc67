"""MLflow 3 logged models through the API: lifecycle, search, artifacts, permissions, and the real client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from google.protobuf.json_format import ParseDict
from mlflow.protos import service_pb2

from experiments import logged_models, services
from experiments.models import Experiment, LoggedModel, LoggedModelStatus, Run
from tests.conftest import make_user

API = "/api/2.0/mlflow/logged-models"


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def experiment(editor: Any, store: Path) -> Experiment:
    return services.create_experiment("models", owner=editor)


@pytest.fixture
def run(experiment: Experiment) -> Run:
    return services.create_run(experiment, user_id="erin", start_time=None, run_name="train", tags=[])


def send(client: Client, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    if method == "GET":
        return client.get(path, payload or {})
    data = json.dumps(payload) if payload is not None else ""
    return client.generic(method, path, data, content_type="application/json")


def create(client: Client, experiment: Experiment, **fields: Any) -> dict[str, Any]:
    response = send(client, "POST", API, {"experiment_id": str(experiment.pk), **fields})
    assert response.status_code == 200, response.content
    return response.json()["model"]


def parses_as_the_client_expects(payload: dict[str, Any], message: Any) -> Any:
    """The client parses every answer into its protobuf classes; a wrong type or field fails here."""
    return ParseDict(payload, message)


# Lifecycle ---------------------------------------------------------------------------------------


def test_a_logged_model_goes_through_its_whole_lifecycle(
    editor_client: Client, editor: Any, experiment: Experiment, run: Run
) -> None:
    model = create(
        editor_client,
        experiment,
        name="classifier",
        model_type="sklearn",
        source_run_id=run.pk,
        params=[{"key": "alpha", "value": "0.5"}],
        tags=[{"key": "team", "value": "vision"}],
    )
    parses_as_the_client_expects({"model": model}, service_pb2.CreateLoggedModel.Response())
    info = model["info"]
    model_id = info["model_id"]
    assert model_id.startswith("m-") and len(model_id) == 34 and int(model_id[2:], 16) >= 0
    assert info["artifact_uri"] == f"mlflow-artifacts:/{experiment.pk}/models/{model_id}/artifacts"
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["experiment_id"] == str(experiment.pk)
    assert (info["name"], info["model_type"], info["source_run_id"]) == ("classifier", "sklearn", run.pk)
    assert info["creator_id"] == str(editor.pk)
    assert info["tags"] == [{"key": "team", "value": "vision"}]
    assert model["data"] == {"params": [{"key": "alpha", "value": "0.5"}], "metrics": []}

    finalized = send(
        editor_client, "PATCH", f"{API}/{model_id}", {"model_id": model_id, "status": "LOGGED_MODEL_READY"}
    )
    assert finalized.status_code == 200 and finalized.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"

    assert send(editor_client, "PATCH", f"{API}/{model_id}/tags", {"tags": [{"key": "team", "value": "nlp"},
                {"key": "stage", "value": "dev"}]}).json() == {}  # fmt: skip
    assert send(editor_client, "DELETE", f"{API}/{model_id}/tags/stage").json() == {}
    missing_tag = send(editor_client, "DELETE", f"{API}/{model_id}/tags/stage")
    assert missing_tag.status_code == 404 and missing_tag.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    params = {"model_id": model_id, "params": [{"key": "alpha", "value": "0.5"}, {"key": "depth", "value": "3"}]}
    assert send(editor_client, "POST", f"{API}/{model_id}/params", params).json() == {}
    assert send(editor_client, "POST", f"{API}/{model_id}/params", params).status_code == 200  # a retry is fine
    changed = send(editor_client, "POST", f"{API}/{model_id}/params", {"params": [{"key": "depth", "value": "4"}]})
    assert changed.status_code == 400 and "Changing param values is not allowed" in changed.json()["message"]

    fetched = send(editor_client, "GET", f"{API}/{model_id}").json()["model"]
    parses_as_the_client_expects({"model": fetched}, service_pb2.GetLoggedModel.Response())
    assert fetched["info"]["tags"] == [{"key": "team", "value": "nlp"}]
    assert sorted((p["key"], p["value"]) for p in fetched["data"]["params"]) == [("alpha", "0.5"), ("depth", "3")]
    assert fetched["info"]["last_updated_timestamp_ms"] >= fetched["info"]["creation_timestamp_ms"]

    assert send(editor_client, "DELETE", f"{API}/{model_id}", {"model_id": model_id}).json() == {}
    gone = send(editor_client, "GET", f"{API}/{model_id}")
    assert gone.status_code == 404 and gone.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert send(editor_client, "GET", f"{API}/{model_id}", {"allow_deleted": "true"}).status_code == 200
    assert send(editor_client, "DELETE", f"{API}/{model_id}").status_code == 200  # deleting again is fine
    assert send(editor_client, "POST", f"{API}/search", {"experiment_ids": [str(experiment.pk)]}).json() == {
        "models": []
    }
    assert LoggedModel.objects.get(pk=model_id).lifecycle_stage == "deleted"


def test_a_name_is_generated_when_none_is_given(editor_client: Client, experiment: Experiment) -> None:
    assert create(editor_client, experiment)["info"]["name"]
    assert create(editor_client, experiment, name="")["info"]["name"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "experiment_id"),
        ({"experiment_id": "x"}, "Experiment ID must be a valid integer"),
        ({"name": "a/b"}, "Invalid model name"),
        ({"name": "v1.2"}, "Invalid model name"),
        ({"source_run_id": "no-such-run"}, "not found"),
        ({"params": [{"key": "../x", "value": "1"}]}, "params.key"),
        ({"tags": "not-a-list"}, "must be a list"),
    ],
)
def test_invalid_creations_are_refused_with_mlflow_errors(
    editor_client: Client, experiment: Experiment, payload: dict[str, Any], message: str
) -> None:
    body = payload if "experiment_id" in payload or not payload else {"experiment_id": str(experiment.pk), **payload}
    response = send(editor_client, "POST", API, body)
    assert 400 <= response.status_code < 500
    assert message in response.json()["message"]
    assert not LoggedModel.objects.exists()


def test_finalize_accepts_the_enum_name_or_number_and_refuses_anything_else(
    editor_client: Client, experiment: Experiment
) -> None:
    model_id = create(editor_client, experiment)["info"]["model_id"]
    assert send(editor_client, "PATCH", f"{API}/{model_id}", {"status": 3}).json()["model"]["info"]["status"] == (
        "LOGGED_MODEL_UPLOAD_FAILED"
    )
    assert send(editor_client, "PATCH", f"{API}/{model_id}", {"status": "LOGGED_MODEL_READY"}).status_code == 200
    for bad in ({"status": "DONE"}, {"status": 0}, {}):
        assert send(editor_client, "PATCH", f"{API}/{model_id}", bad).status_code == 400
    assert LoggedModel.objects.get(pk=model_id).status == LoggedModelStatus.READY


def test_a_model_without_a_creator_still_parses_as_the_client_expects(
    editor_client: Client, experiment: Experiment
) -> None:
    model = logged_models.create_logged_model(experiment, name="sys", model_type=None, source_run=None, creator=None)
    payload = send(editor_client, "GET", f"{API}/{model.pk}").json()
    assert "creator_id" not in payload["model"]["info"]
    parses_as_the_client_expects(payload, service_pb2.GetLoggedModel.Response())


def test_unknown_models_are_not_found(editor_client: Client, store: Path) -> None:
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("PATCH", "/tags"), ("POST", "/params")):
        response = send(editor_client, method, f"{API}/m-nope{suffix}", {"status": 2, "tags": [], "params": []})
        assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# Search ------------------------------------------------------------------------------------------


@pytest.fixture
def three_models(editor: Any, experiment: Experiment, run: Run) -> list[LoggedModel]:
    made = []
    for index, (name, kind, team) in enumerate([("alpha", "sklearn", "vision"), ("beta", "torch", "nlp"),
                                                ("gamma", "sklearn", "nlp")]):  # fmt: skip
        model = logged_models.create_logged_model(
            experiment,
            name=name,
            model_type=kind,
            source_run=run if name == "beta" else None,
            params=[("depth", str(index))],
            tags=[("team", team)],
            creator=editor,
        )
        LoggedModel.objects.filter(pk=model.pk).update(creation_timestamp_ms=1_000 + index)
        made.append(model)
    logged_models.finalize_logged_model(made[0], "LOGGED_MODEL_READY")
    return made


def search(client: Client, experiment: Experiment, **fields: Any) -> Any:
    return send(client, "POST", f"{API}/search", {"experiment_ids": [str(experiment.pk)], **fields})


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    parses_as_the_client_expects(response.json(), service_pb2.SearchLoggedModels.Response())
    return [m["info"]["name"] for m in response.json()["models"]]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", ["gamma", "beta", "alpha"]),
        ("name = 'beta'", ["beta"]),
        ("attributes.name != 'beta'", ["gamma", "alpha"]),
        ("name LIKE 'a%'", ["alpha"]),
        ("name ILIKE '%A'", ["gamma", "beta", "alpha"]),
        ("name LIKE '_eta'", ["beta"]),
        ("model_type IN ('torch', 'keras')", ["beta"]),
        ("model_type NOT IN ('torch')", ["gamma", "alpha"]),
        ("status = 'LOGGED_MODEL_READY'", ["alpha"]),
        ("status = 'READY'", ["alpha"]),
        ("tags.team = 'nlp'", ["gamma", "beta"]),
        ("tags.`team` LIKE 'vis%' AND name = 'alpha'", ["alpha"]),
        ("params.depth = '2'", ["gamma"]),
        ("params.depth = 2", ["gamma"]),
        ("creation_timestamp > 1000", ["gamma", "beta"]),
        ("creation_time <= 1001 and model_type = 'sklearn'", ["alpha"]),
        ("metrics.accuracy > 0.5", []),
        ("tags.missing = 'x'", []),
    ],
)
def test_search_filters_like_mlflow(
    editor_client: Client, experiment: Experiment, three_models: list[LoggedModel], filter_string: str, expected: list
) -> None:
    assert names(search(editor_client, experiment, filter=filter_string)) == expected


def test_search_can_filter_by_source_run(
    editor_client: Client, experiment: Experiment, run: Run, three_models: list[LoggedModel]
) -> None:
    assert names(search(editor_client, experiment, filter=f"source_run_id = '{run.pk}'")) == ["beta"]


@pytest.mark.parametrize(
    "filter_string",
    ["name", "name = ", "name ~ 'a'", "colour = 'red'", "foo.bar = 'x'", "name = 'a' OR name = 'b'",
     "creation_timestamp LIKE '1%'", "metrics.loss = 'low'", "name IN 'a'"],
)  # fmt: skip
def test_search_rejects_malformed_filters(
    editor_client: Client, experiment: Experiment, three_models: list[LoggedModel], filter_string: str
) -> None:
    response = search(editor_client, experiment, filter=filter_string)
    assert response.status_code == 400, (filter_string, response.content)
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_search_orders_and_pages(
    editor_client: Client, experiment: Experiment, three_models: list[LoggedModel]
) -> None:
    order = [{"field_name": "name", "ascending": True}]
    first = search(editor_client, experiment, order_by=order, max_results=2)
    assert names(first) == ["alpha", "beta"]
    token = first.json()["next_page_token"]
    second = search(editor_client, experiment, order_by=order, max_results=2, page_token=token)
    assert names(second) == ["gamma"] and "next_page_token" not in second.json()
    stolen = search(editor_client, experiment, order_by=order, max_results=2, page_token=token, filter="name = 'x'")
    assert stolen.status_code == 400
    desc = [{"field_name": "creation_timestamp", "ascending": False}]
    assert names(search(editor_client, experiment, order_by=desc)) == ["gamma", "beta", "alpha"]
    metric_order = [{"field_name": "metrics.accuracy", "ascending": False}]
    assert names(search(editor_client, experiment, order_by=metric_order)) == ["gamma", "beta", "alpha"]
    assert search(editor_client, experiment, order_by=[{"field_name": "colour"}]).status_code == 400
    assert search(editor_client, experiment, max_results=5000).status_code == 400
    assert send(editor_client, "POST", f"{API}/search", {}).status_code == 400


def test_search_finds_nothing_in_experiments_the_user_cannot_read(
    experiment: Experiment, three_models: list[LoggedModel], settings: Any, django_user_model: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    stranger = Client()
    stranger.force_login(make_user(django_user_model, "sam", "editor"))
    assert search(stranger, experiment).json() == {"models": []}


# Artifacts ---------------------------------------------------------------------------------------


def test_a_models_artifacts_are_uploaded_listed_and_downloaded_under_its_location(
    editor_client: Client, experiment: Experiment, store: Path
) -> None:
    model = create(editor_client, experiment, name="packed")["info"]
    root = model["artifact_uri"].removeprefix("mlflow-artifacts:/")
    for relative, content in ((f"{root}/MLmodel", b"flavors: {}\n"), (f"{root}/data/model.pkl", b"\x80\x04")):
        put = editor_client.put(f"/api/2.0/mlflow-artifacts/artifacts/{relative}", content, content_type="text/plain")
        assert put.status_code == 200
    assert (store / root / "data" / "model.pkl").read_bytes() == b"\x80\x04"

    listing = send(editor_client, "GET", f"{API}/{model['model_id']}/artifacts/directories")
    assert listing.json() == {
        "root_uri": model["artifact_uri"],
        "files": [{"path": "MLmodel", "is_dir": False, "file_size": 12}, {"path": "data", "is_dir": True}],
    }
    parses_as_the_client_expects(listing.json(), service_pb2.ListLoggedModelArtifacts.Response())
    nested = send(
        editor_client, "GET", f"{API}/{model['model_id']}/artifacts/directories", {"artifact_directory_path": "data"}
    )
    assert nested.json()["files"] == [{"path": "data/model.pkl", "is_dir": False, "file_size": 2}]
    escape = send(
        editor_client, "GET", f"{API}/{model['model_id']}/artifacts/directories", {"artifact_directory_path": "../.."}
    )
    assert escape.status_code == 400

    download = send(
        editor_client, "GET", f"{API}/{model['model_id']}/artifacts/files", {"artifact_file_path": "MLmodel"}
    )
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"flavors: {}\n"
    assert download["Content-Disposition"] == 'attachment; filename="MLmodel"'
    assert send(editor_client, "GET", f"{API}/{model['model_id']}/artifacts/files").status_code == 400


# Permissions -------------------------------------------------------------------------------------


def test_a_viewer_can_read_logged_models_but_not_change_them(
    editor_client: Client, viewer_client: Client, experiment: Experiment
) -> None:
    model_id = create(editor_client, experiment, name="m")["info"]["model_id"]
    assert send(viewer_client, "GET", f"{API}/{model_id}").status_code == 200
    assert names(search(viewer_client, experiment)) == ["m"]
    assert send(viewer_client, "GET", f"{API}/{model_id}/artifacts/directories").status_code == 200
    for method, path, payload in (
        ("POST", API, {"experiment_id": str(experiment.pk)}),
        ("PATCH", f"{API}/{model_id}", {"status": 2}),
        ("DELETE", f"{API}/{model_id}", None),
        ("PATCH", f"{API}/{model_id}/tags", {"tags": [{"key": "k", "value": "v"}]}),
        ("DELETE", f"{API}/{model_id}/tags/k", None),
        ("POST", f"{API}/{model_id}/params", {"params": [{"key": "k", "value": "v"}]}),
    ):
        response = send(viewer_client, method, path, payload)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert LoggedModel.objects.get(pk=model_id).status == LoggedModelStatus.PENDING
    assert LoggedModel.objects.count() == 1


def test_an_outsider_cannot_find_logged_models_at_all(
    editor_client: Client, experiment: Experiment, settings: Any, django_user_model: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    model_id = create(editor_client, experiment, name="m")["info"]["model_id"]
    stranger = Client()
    stranger.force_login(make_user(django_user_model, "sam", "editor"))
    for method, path, payload in (
        ("GET", f"{API}/{model_id}", None),
        ("POST", API, {"experiment_id": str(experiment.pk)}),
        ("PATCH", f"{API}/{model_id}", {"status": 2}),
        ("DELETE", f"{API}/{model_id}", None),
        ("GET", f"{API}/{model_id}/artifacts/directories", None),
    ):
        response = send(stranger, method, path, payload)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert LoggedModel.objects.get(pk=model_id).lifecycle_stage == "active"


def test_an_admin_may_change_anyones_logged_model(
    editor_client: Client, admin_client: Client, experiment: Experiment, settings: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    model_id = create(editor_client, experiment, name="m")["info"]["model_id"]
    assert send(admin_client, "PATCH", f"{API}/{model_id}", {"status": 2}).status_code == 200


# The real client ---------------------------------------------------------------------------------


def test_the_mlflow_client_drives_a_logged_model_end_to_end(mlflow_client: Any, tmp_path: Path) -> None:
    import mlflow
    from mlflow.entities import LoggedModelStatus as ClientStatus

    client = mlflow_client
    experiment_id = client.create_experiment("models-e2e")
    run_id = client.create_run(experiment_id).info.run_id

    model = client.create_logged_model(
        experiment_id, name="clf", source_run_id=run_id, params={"alpha": "0.5"}, tags={"team": "vision"}
    )
    assert model.status == ClientStatus.PENDING and model.source_run_id == run_id
    package = tmp_path / "package"
    (package / "data").mkdir(parents=True)
    (package / "MLmodel").write_text("flavors: {}\n")
    (package / "data" / "model.pkl").write_bytes(b"\x80\x04pickled")
    client.log_model_artifacts(model.model_id, str(package))
    client.finalize_logged_model(model.model_id, ClientStatus.READY)
    client.set_logged_model_tags(model.model_id, {"stage": "prod"})
    client.log_model_params(model.model_id, {"depth": "3"})

    fetched = client.get_logged_model(model.model_id)
    assert fetched.status == ClientStatus.READY
    assert fetched.tags == {"team": "vision", "stage": "prod"}
    assert fetched.params == {"alpha": "0.5", "depth": "3"}
    assert [f.path for f in client.list_logged_model_artifacts(model.model_id)] == ["MLmodel", "data"]
    found = client.search_logged_models([experiment_id], filter_string="name = 'clf'")
    assert [m.model_id for m in found] == [model.model_id]
    local = mlflow.artifacts.download_artifacts(artifact_uri=fetched.artifact_location, dst_path=str(tmp_path / "dl"))
    assert (Path(local) / "data" / "model.pkl").read_bytes() == b"\x80\x04pickled"

    client.delete_logged_model_tag(model.model_id, "stage")
    client.delete_logged_model(model.model_id)
    assert client.search_logged_models([experiment_id]) == []


def test_mlflow_pyfunc_log_model_and_load_model_work_against_the_portal(mlflow_client: Any, store: Path) -> None:
    import mlflow

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[int], params: dict[str, Any] | None = None) -> list[int]:
            return [2 * x for x in model_input]

    experiment_id = mlflow_client.create_experiment("pyfunc-e2e")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("factor", 2)
        info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler(), pip_requirements=["mlflow"])

    model = mlflow_client.get_logged_model(info.model_id)
    assert model.status.name == "READY" and model.source_run_id == run.info.run_id
    assert model.params == {"factor": "2"}
    stored = LoggedModel.objects.get(pk=info.model_id)
    assert (store / f"{experiment_id}/models/{info.model_id}/artifacts/MLmodel").is_file()
    assert stored.experiment_id == int(experiment_id)
    assert mlflow.pyfunc.load_model(info.model_uri).predict([1, 2, 3]) == [2, 4, 6]
