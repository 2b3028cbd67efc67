"""The founding document's MLflow + Keras example runs unmodified against a live portal; autolog and
pandas dataset inputs work too."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from accounts.services import create_api_token
from experiments.models import LoggedModel, LoggedModelStatus, Metric, Param, Run, RunInput, RunOutput
from tests.services import skip_or_fail

SCRIPT = Path(__file__).parent / "scripts" / "founding_example.py"
pytestmark = pytest.mark.e2e


def test_the_founding_example_trains_logs_and_reloads_a_keras_model(
    live_server: Any, editor: Any, settings: Any, tmp_path: Path
) -> None:
    if importlib.util.find_spec("tensorflow") is None:
        skip_or_fail("tensorflow is not installed")
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": live_server.url,
        "MLFLOW_TRACKING_TOKEN": create_api_token(editor, "script").secret,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    run = Run.objects.get(pk=report["run_id"])
    assert run.status == "FINISHED"
    assert Param.objects.get(run=run, key="epochs").value == "5"
    assert run.latest_metrics.get(key="loss").value == pytest.approx(report["loss"])
    model = LoggedModel.objects.get(pk=report["model_id"])
    assert model.status == LoggedModelStatus.READY and model.source_run_id == run.pk
    assert RunOutput.objects.filter(run=run, model=model).exists()
    # Both URIs downloaded the model from the portal and predict what the trained model predicted.
    assert report["max_diff_runs_uri"] < 1e-5
    assert report["max_diff_model_uri"] < 1e-5
    stored = list((tmp_path / "artifacts").rglob("MLmodel"))
    assert stored, "the model's files were not stored in the portal's artifact store"

    auto = Run.objects.get(pk=report["auto_run_id"])
    assert Param.objects.filter(run=auto, key="epochs", value="3").exists()  # autolog's params
    assert Metric.objects.filter(run=auto, key="loss").count() == 3  # one point per epoch
    assert Metric.objects.filter(run=auto, key="val_loss").count() == 3
    dataset = RunInput.objects.get(run=auto, name="train-frame")
    assert dataset.source_type and len(dataset.digest) >= 8
    assert {"key": "mlflow.data.context", "value": "training"} in dataset.tags
