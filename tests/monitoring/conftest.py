"""Monitoring fixtures: a deployment serving a version, and prediction log rows as the model server
writes them (its own tests cover the writing; these cover what monitoring makes of the rows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest

from deployments import services
from deployments.models import Deployment, PredictionLog
from registry import services as registry
from tests.deployments.conftest import add_version, serve_now

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(settings: Any, tmp_path: Any) -> Any:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


@pytest.fixture
def deployment(editor: Any, store: Any) -> Deployment:
    model = registry.create_registered_model("churn", owner=editor)
    add_version(model, editor)
    add_version(model, editor)
    deployment = services.create_deployment("churn-prod", model, "1", owner=editor, environment="production")
    serve_now(deployment, 1, actor=editor)
    return deployment


@pytest.fixture
def predict(deployment: Deployment) -> Callable[..., PredictionLog]:
    """Log one answered prediction: `predict(at, latency_ms=.., outputs=.., version=.., status=..)`."""
    ids = count(1)

    def log(at: datetime, **fields: Any) -> PredictionLog:
        version = fields.pop("version", 1)
        revision = deployment.revisions.filter(model_version__version=version).order_by("-id").first()
        if revision is None:  # a canary's revision, say
            model_version = deployment.registered_model.versions.get(version=version)
            revision = deployment.revisions.create(model_version=model_version, state="active", traffic_weight=10)
        values = {"latency_ms": 2.0, "status": 200, "rows": 1, "outputs": [[0.9]], "arm": "stable", **fields}
        return PredictionLog.objects.create(
            time=at, request_id=fields.pop("request_id", f"req-{next(ids)}"), deployment=deployment,
            revision=revision, model_version=version, **{k: v for k, v in values.items() if k != "request_id"},
        )  # fmt: skip

    return log
