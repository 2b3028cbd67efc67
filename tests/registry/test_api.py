"""The Model Registry API route by route: JSON shapes the client parses, MLflow's error codes, sources."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from google.protobuf.json_format import ParseDict
from mlflow.protos import model_registry_pb2 as pb

from experiments import logged_models
from experiments.models import Experiment, Run
from registry import services
from registry.models import ModelVersion, RegisteredModel, RegistryEvent
from tests.registry.conftest import call


@pytest.fixture
def model(editor: Any, run: Run) -> RegisteredModel:
    model = services.create_registered_model("classifier", owner=editor, tags=[("team", "vision")])
    resolved = services.resolve_source(editor, f"runs:/{run.pk}/model")
    version = services.create_model_version(model, resolved, source=f"runs:/{run.pk}/model", creator=editor)
    services.set_alias(model, "champion", version, actor=editor)
    return model


def ok(response: Any, message: Any = None) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    if message is not None:
        ParseDict(body, message)  # the client parses every answer into these classes
    return body


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["message"])


# Shapes ------------------------------------------------------------------------------------------


def test_a_registered_model_and_its_versions_have_the_shapes_the_client_parses(
    editor_client: Client, editor: Any, run: Run, experiment: Experiment
) -> None:
    body = ok(
        call(
            editor_client,
            "POST",
            "registered-models/create",
            {"name": "churn", "description": "d", "tags": [{"key": "a", "value": "b"}]},
        ),
        pb.CreateRegisteredModel.Response(),
    )
    assert body["registered_model"]["name"] == "churn"
    assert body["registered_model"]["tags"] == [{"key": "a", "value": "b"}]
    created = ok(
        call(
            editor_client, "POST", "model-versions/create",
            {"name": "churn", "source": f"runs:/{run.pk}/model", "run_id": run.pk, "description": "first",
             "tags": [{"key": "k", "value": "v"}], "run_link": "http://x/run"},
        ),
        pb.CreateModelVersion.Response(),
    )["model_version"]  # fmt: skip
    assert created["version"] == "1" and isinstance(created["version"], str)
    assert created["status"] == "READY" and created["current_stage"] == "None"
    assert created["run_id"] == run.pk and created["source"] == f"runs:/{run.pk}/model"
    assert created["user_id"] == "erin" and created["tags"] == [{"key": "k", "value": "v"}]
    assert created["aliases"] == [] and created["run_link"] == "http://x/run"
    assert "model_id" not in created

    ok(call(editor_client, "POST", "registered-models/alias", {"name": "churn", "alias": "champion", "version": "1"}))
    got = ok(call(editor_client, "GET", "registered-models/get", {"name": "churn"}), pb.GetRegisteredModel.Response())
    assert got["registered_model"]["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [v["version"] for v in got["registered_model"]["latest_versions"]] == ["1"]
    assert got["registered_model"]["latest_versions"][0]["aliases"] == ["champion"]
    for method in ("GET", "POST"):
        latest = ok(
            call(editor_client, method, "registered-models/get-latest-versions", {"name": "churn", "stages": ["None"]}),
            pb.GetLatestVersions.Response(),
        )
        assert [v["version"] for v in latest["model_versions"]] == ["1"]
    uri = ok(
        call(editor_client, "GET", "model-versions/get-download-uri", {"name": "churn", "version": "1"}),
        pb.GetModelVersionDownloadUri.Response(),
    )
    assert uri["artifact_uri"] == f"mlflow-artifacts:/{experiment.pk}/{run.pk}/artifacts/model"
    by_alias = ok(
        call(editor_client, "GET", "registered-models/alias", {"name": "churn", "alias": "champion"}),
        pb.GetModelVersionByAlias.Response(),
    )
    assert by_alias["model_version"]["version"] == "1"
    ok(
        call(editor_client, "GET", "model-versions/search", {"filter": "name='churn'"}),
        pb.SearchModelVersions.Response(),
    )
    ok(call(editor_client, "GET", "registered-models/search", {}), pb.SearchRegisteredModels.Response())
    for method, path, payload in [
        ("POST", "registered-models/set-tag", {"name": "churn", "key": "x", "value": "y"}),
        ("DELETE", "registered-models/delete-tag", {"name": "churn", "key": "x"}),
        ("POST", "model-versions/set-tag", {"name": "churn", "version": "1", "key": "x", "value": "y"}),
        ("DELETE", "model-versions/delete-tag", {"name": "churn", "version": "1", "key": "x"}),
        ("DELETE", "registered-models/alias", {"name": "churn", "alias": "champion"}),
        ("DELETE", "registered-models/alias", {"name": "churn", "alias": "champion"}),  # again: still fine
    ]:
        assert ok(call(editor_client, method, path, payload)) == {}


def test_a_logged_model_registers_from_its_models_uri(
    editor_client: Client, editor: Any, run: Run, experiment: Experiment
) -> None:
    logged = logged_models.create_logged_model(experiment, name="m", model_type=None, source_run=run, creator=editor)
    ok(call(editor_client, "POST", "registered-models/create", {"name": "lm"}))
    version = ok(
        call(
            editor_client,
            "POST",
            "model-versions/create",
            {"name": "lm", "source": f"models:/{logged.pk}", "model_id": logged.pk},
        )
    )["model_version"]
    assert version["model_id"] == logged.pk and version["run_id"] == run.pk
    stored = ModelVersion.objects.get(model__name="lm")
    assert stored.storage_location == logged.artifact_location
    again = ok(call(editor_client, "POST", "model-versions/create", {"name": "lm", "source": "models:/lm/1"}))[
        "model_version"
    ]
    assert again["version"] == "2" and again["model_id"] == logged.pk
    assert ModelVersion.objects.get(model__name="lm", version=2).storage_location == logged.artifact_location


# Errors ------------------------------------------------------------------------------------------


def test_it_answers_mlflows_error_codes(editor_client: Client, model: RegisteredModel, run: Run) -> None:
    def post(path: str, payload: dict[str, Any], method: str = "POST") -> Any:
        return call(editor_client, method, path, payload)

    assert "already exists" in error(
        post("registered-models/create", {"name": "classifier"}), 400, "RESOURCE_ALREADY_EXISTS"
    )
    error(post("registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/create", {"name": "a/b"}), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/get", {"name": "nope"}, "GET"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(post("model-versions/get", {"name": "classifier", "version": "7"}, "GET"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(post("model-versions/get", {"name": "classifier", "version": "abc"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("model-versions/get", {"name": "classifier"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(
        post("registered-models/alias", {"name": "classifier", "alias": "nope"}, "GET"), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    error(
        post("registered-models/alias", {"name": "classifier", "alias": "latest", "version": "1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        post("registered-models/alias", {"name": "classifier", "alias": "v1", "version": "1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        post("registered-models/alias", {"name": "classifier", "alias": "a b", "version": "1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        post("registered-models/alias", {"name": "classifier", "alias": "x", "version": "9"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        post("model-versions/transition-stage", {"name": "classifier", "version": "1", "stage": "Live"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    archive = {"name": "classifier", "version": "1", "stage": "Archived", "archive_existing_versions": True}
    error(post("model-versions/transition-stage", archive), 400, "INVALID_PARAMETER_VALUE")
    services.create_registered_model("other", owner=None)
    error(post("registered-models/rename", {"name": "classifier", "new_name": "other"}), 400, "RESOURCE_ALREADY_EXISTS")
    error(post("registered-models/rename", {"name": "classifier"}), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/search", {"filter": "name ="}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/search", {"filter": "owner = 'x'"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/search", {"max_results": "1001"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/search", {"order_by": "color DESC"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("registered-models/search", {"page_token": "garbage"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(post("model-versions/search", {"filter": "version_number = 'x'"}, "GET"), 400, "INVALID_PARAMETER_VALUE")
    error(
        post("model-versions/set-tag", {"name": "classifier", "version": "1", "key": "k"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(post("registered-models/get", {"name": "classifier"}), 400, "BAD_REQUEST")  # POST where GET is declared
    response = editor_client.generic(
        "POST", "/api/2.0/mlflow/registered-models/create", "{not json", content_type="application/json"
    )
    error(response, 400, "BAD_REQUEST")
    assert RegisteredModel.objects.filter(name="classifier").get().last_version == 1


def test_searches_filter_order_and_page(editor_client: Client, editor: Any, model: RegisteredModel, run: Run) -> None:
    for name in ("b-model", "a-model", "B-upper"):
        services.create_registered_model(name, owner=editor, tags=[("stage", "dev")] if name == "a-model" else [])

    def names(**params: Any) -> list[str]:
        body = ok(call(editor_client, "GET", "registered-models/search", params))
        return [m["name"] for m in body["registered_models"]]

    assert names() == ["B-upper", "a-model", "b-model", "classifier"]
    assert names(filter="name LIKE 'b%'") == ["b-model"]
    assert names(filter="name ILIKE 'b%'") == ["B-upper", "b-model"]
    assert names(filter="tags.stage = 'dev'") == ["a-model"]
    assert names(filter="name != 'classifier' AND name LIKE '%model'") == ["a-model", "b-model"]
    assert names(order_by=["name DESC"]) == ["classifier", "b-model", "a-model", "B-upper"]
    first = ok(call(editor_client, "GET", "registered-models/search", {"max_results": 3}))
    second = ok(
        call(
            editor_client, "GET", "registered-models/search", {"max_results": 3, "page_token": first["next_page_token"]}
        )
    )
    assert [m["name"] for m in second["registered_models"]] == ["classifier"] and "next_page_token" not in second

    versions = ok(call(editor_client, "GET", "model-versions/search", {"filter": f"run_id = '{run.pk}'"}))[
        "model_versions"
    ]
    assert [(v["name"], v["version"]) for v in versions] == [("classifier", "1")]
    source = ok(call(editor_client, "GET", "model-versions/search", {"filter": "source_path LIKE 'runs:/%'"}))
    assert len(source["model_versions"]) == 1
    assert ok(call(editor_client, "GET", "model-versions/search", {"filter": "version_number > 1"})) == {
        "model_versions": []
    }


# Sources -----------------------------------------------------------------------------------------

REFUSED = [
    "file:///etc/passwd",
    "/var/models/model",
    "model",
    "../model",
    "C:\\models\\x",
    "s3://bucket/model",
    "https://evil.example/model",
    "mlflow-artifacts://other-host/{exp}/{run}/artifacts/model",
    "mlflow-artifacts:/{exp}/{run}/artifacts/../../../etc",
    "mlflow-artifacts:/{exp}/{run}/artifacts/%2e%2e/%2e%2e/x",
    "mlflow-artifacts:/{exp}/{run}/elsewhere",
    "mlflow-artifacts:/9{exp}/{run}/artifacts/model",
    "mlflow-artifacts:/../{exp}",
    "runs:/{run}/../../outside",
    "runs://host/{run}/model",
    "models:/classifier@champion",
    "models://other/m-1",
    "models:/a/b/c",
]


@pytest.mark.parametrize("source", REFUSED)
def test_sources_outside_the_artifact_store_are_refused(
    editor_client: Client, model: RegisteredModel, run: Run, experiment: Experiment, source: str
) -> None:
    source = source.format(exp=experiment.pk, run=run.pk)
    response = call(editor_client, "POST", "model-versions/create", {"name": "classifier", "source": source})
    error(response, 400, "INVALID_PARAMETER_VALUE")
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_a_source_of_a_missing_run_or_model_is_not_found(editor_client: Client, model: RegisteredModel) -> None:
    for source in ("runs:/0123456789abcdef0123456789abcdef/model", "models:/m-missing", "models:/classifier/5"):
        response = call(editor_client, "POST", "model-versions/create", {"name": "classifier", "source": source})
        error(response, 404, "RESOURCE_DOES_NOT_EXIST")


def test_the_run_id_must_match_the_source(
    editor_client: Client, model: RegisteredModel, run: Run, experiment: Experiment
) -> None:
    from experiments import services as tracking

    other = tracking.create_run(experiment, user_id="erin", start_time=None, run_name="other", tags=[])
    payload = {"name": "classifier", "source": f"runs:/{run.pk}/model", "run_id": other.pk}
    error(call(editor_client, "POST", "model-versions/create", payload), 400, "INVALID_PARAMETER_VALUE")


# Versions and the timeline -----------------------------------------------------------------------


def test_deleting_a_version_removes_its_aliases_and_never_reuses_its_number(
    editor_client: Client, model: RegisteredModel, run: Run
) -> None:
    ok(call(editor_client, "DELETE", "model-versions/delete", {"name": "classifier", "version": "1"}))
    assert not model.aliases.exists()
    created = ok(
        call(editor_client, "POST", "model-versions/create", {"name": "classifier", "source": f"runs:/{run.pk}/m"})
    )
    assert created["model_version"]["version"] == "2"
    kinds = list(
        RegistryEvent.objects.filter(model=model).order_by("timestamp", "id").values_list("kind", "version", "alias")
    )
    assert kinds == [
        ("model_created", None, ""),
        ("version_created", 1, ""),
        ("alias_set", 1, "champion"),
        ("alias_deleted", 1, "champion"),
        ("version_deleted", 1, ""),
        ("version_created", 2, ""),
    ]
