"""Model versions trained on a dataset version are downstream of it, and keep it from being deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from datasets.models import DatasetVersion
from experiments import services as tracking
from experiments.models import Run
from registry import services
from registry.models import ModelVersion
from tests.conftest import bearer, make_user
from tests.datasets.factories import push
from tests.deployments.conftest import serve_now
from tests.experiments.factories import ExperimentFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def version(editor: Any) -> DatasetVersion:
    return push(author=editor)


@pytest.fixture
def run(editor: Any, version: DatasetVersion) -> Run:
    run = RunFactory(experiment=ExperimentFactory(name="training", owner=editor), run_name="train-1")
    dataset = {"name": "iris", "digest": version.sha256, "source_type": "http", "source": ""}
    tracking.log_inputs(run, [{"dataset": dataset, "tags": []}])
    return run


def register(user: Any, run: Run, name: str = "iris-classifier") -> ModelVersion:
    model = services.create_registered_model(name, owner=user)
    source = f"runs:/{run.pk}/model"
    return services.create_model_version(model, services.resolve_source(user, source), source=source, creator=user)


def test_the_version_page_lists_model_versions_trained_on_it(
    editor: Any, editor_client: Client, version: DatasetVersion, run: Run
) -> None:
    register(editor, run)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    table = html[html.index('id="downstream-table"') :]
    assert "iris-classifier v1" in table and 'href="/models/iris-classifier/"' in table
    assert "train-1" in table


def test_deleting_a_version_a_registered_model_was_trained_on_is_refused(
    editor: Any, version: DatasetVersion, run: Run
) -> None:
    register(editor, run)
    response = Client(**bearer(editor)).delete("/api/v1/datasets/iris/versions/1/")
    assert response.status_code == 409
    kinds = {d["kind"]: d["label"] for d in response.json()["error"]["details"]["dependants"]}
    assert kinds["model version"] == "iris-classifier v1"
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_a_model_the_viewer_cannot_read_is_counted_not_named(
    editor: Any, version: DatasetVersion, run: Run, settings: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    register(editor, run, name="secret-model")
    admin = make_user(type(editor), "root", "admin", is_superuser=True)
    assert "secret-model" in Client(**bearer(admin)).get("/datasets/iris/versions/1/").content.decode()
    other = make_user(type(editor), "olga", "editor")
    html = Client(**bearer(other)).get("/datasets/iris/versions/1/").content.decode()
    assert "secret-model" not in html


def test_the_version_page_lists_deployments_serving_a_model_trained_on_it(
    editor: Any, editor_client: Client, version: DatasetVersion, run: Run
) -> None:
    from deployments import services as deployments

    model_version = register(editor, run)
    deployment = deployments.create_deployment("iris-api", model_version.model, 1, owner=editor)
    serve_now(deployment, model_version, actor=editor)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    table = html[html.index('id="downstream-table"') :]
    assert "iris-api" in table and "staging, 100% of traffic" in table
