"""Registry fixtures: an artifact store per test, the real `mlflow` client, and a run to register from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from experiments import services as tracking
from experiments.models import Experiment, Run
from tests.experiments.conftest import mlflow_client  # noqa: F401  (the live-server client fixture)

API = "/api/2.0/mlflow"


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def experiment(editor: Any, store: Path) -> Experiment:
    return tracking.create_experiment("training", owner=editor)


@pytest.fixture
def run(experiment: Experiment) -> Run:
    return tracking.create_run(experiment, user_id="erin", start_time=None, run_name="train", tags=[])


def call(client: Client, method: str, path: str, payload: dict[str, Any] | None = None, **extra: Any) -> Any:
    """One MLflow API call the way the client makes it: GET parameters in the query string, else JSON."""
    url = f"{API}/{path}"
    if method == "GET":
        return client.get(url, payload or {}, **extra)
    body = json.dumps(payload) if payload is not None else ""
    return client.generic(method, url, body, content_type="application/json", **extra)
