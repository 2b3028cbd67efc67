"""Deployment fixtures: an artifact store per test, registered model versions, and a real Keras model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments import artifacts
from experiments import services as tracking
from registry import services as registry
from registry.models import ModelVersion, RegisteredModel

FEATURES = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [0.5, 0.5]], dtype="float32")


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


@pytest.fixture
def registered_model(editor: Any, store: Path) -> RegisteredModel:
    return registry.create_registered_model("churn", owner=editor)


def add_version(model: RegisteredModel, user: Any, save: Any = None) -> ModelVersion:
    """A new version of `model` from a fresh run; `save(path)` writes the model files (else an empty MLmodel)."""
    experiment = tracking.create_experiment(f"exp-{model.last_version + 1}-{model.pk}", owner=user)
    run = tracking.create_run(experiment, user_id=user.username, start_time=None, run_name="train", tags=[])
    target = artifacts.resolve(artifacts.relative_of_uri(run.artifact_uri)) / "model"
    if save is None:
        target.mkdir(parents=True)
        (target / "MLmodel").write_text("flavors: {}\n")
    else:
        save(target)
    resolved = registry.resolve_source(user, f"runs:/{run.run_uuid}/model")
    return registry.create_model_version(model, resolved, source=f"runs:/{run.run_uuid}/model", creator=user)


def train_keras(seed: int) -> Any:
    """A two-layer Keras model trained for a few steps on a few rows."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(FEATURES, FEATURES.sum(axis=1), epochs=2, verbose=0)
    return model


_SAVED: dict[int, Path] = {}


def keras_saver(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Save `model` in MLflow's format once per test session, then copy it where a test wants it."""

    def save(path: Path) -> None:
        if id(model) not in _SAVED:
            import mlflow.tensorflow
            from mlflow.models import infer_signature

            signature = infer_signature(FEATURES, model.predict(FEATURES, verbose=0))
            saved = tmp_path_factory.mktemp("keras") / "model"
            # Naming the requirements skips MLflow's inference of them, which reloads the model in a subprocess.
            mlflow.tensorflow.save_model(model, str(saved), signature=signature, pip_requirements=["tensorflow"])
            _SAVED[id(model)] = saved
        shutil.copytree(_SAVED[id(model)], path)

    return save


def serve_now(deployment: Any, target: Any = None, *, actor: Any) -> Any:
    """Deploy `target` and finish its rollout at once, as the rollout job does once validation and the
    gates pass. For tests of what follows a deploy; tests/deployments/test_rollouts.py runs the job itself."""
    from deployments import services

    rollout = services.deploy(deployment, target, actor=actor)
    rollout = services.shift_traffic(rollout, len(rollout.steps) - 1)
    services.complete_rollout(rollout, actor=actor)
    rollout.revision.refresh_from_db()
    return rollout.revision


@pytest.fixture
def revision(registered_model: RegisteredModel, editor: Any) -> Any:
    """A pending revision of a new deployment "churn", for prediction log rows to point at."""
    from deployments import services
    from deployments.models import DeploymentRevision

    version = add_version(registered_model, editor)
    deployment = services.create_deployment("churn", registered_model, str(version.version), owner=editor)
    return DeploymentRevision.objects.create(deployment=deployment, model_version=version)
