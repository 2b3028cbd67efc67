"""`manage.py serve_models` as a real process on PostgreSQL: it loads the active revision and predicts over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployments import services
from deployments.management.commands.serve_models import STOP_SECONDS
from deployments.models import PredictionLog
from registry.models import RegisteredModel
from tests.deployments.conftest import FEATURES, add_version, keras_saver, serve_now, train_keras
from tests.services import Process, child_env, require_postgres, running, wait_until

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (a local test URL)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def test_the_model_server_process_serves_a_deployed_keras_model_over_http(
    transactional_db: None,
    tmp_path: Path,
    store: Path,
    registered_model: RegisteredModel,
    editor: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    require_postgres()
    model = train_keras(3)
    version = add_version(registered_model, editor, keras_saver(model, tmp_path_factory))
    serve_now(services.create_deployment("churn", registered_model, "1", owner=editor), version, actor=editor)
    # The writer holds the log until the server stops: a clean stop must write all of it. A process
    # variable named like a header must not pass for one (granian copies the environment into requests).
    env = child_env(
        tmp_path,
        ARTIFACT_ROOT=str(store),
        MODEL_SERVER_POLL_SECONDS="0.5",
        MODEL_SERVER_LOG_FLUSH_SECONDS="3600",
        HTTP_X_REQUEST_ID="from-the-environment",
    )
    port = free_port()
    server = Process("modelserver", [sys.executable, "manage.py", "serve_models", "--port", str(port)], env)
    base = f"http://127.0.0.1:{port}"
    with running(server):
        try:
            wait_until(lambda: get(f"{base}/ready")[0] == 200, timeout=120, message="the model server to be ready")
        except AssertionError:
            raise AssertionError(server.output()) from None
        request = urllib.request.Request(  # noqa: S310
            f"{base}/v1/models/churn:predict",
            json.dumps({"instances": FEATURES.tolist()}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.headers["X-Request-Id"]
            body = json.loads(response.read())
        np.testing.assert_allclose(body["predictions"], model(FEATURES, training=False).numpy(), rtol=1e-5, atol=1e-6)
        status, text = get(f"{base}/metrics")
        assert status == 200 and b'model_predictions_total{deployment="churn",model_version="1"} 5.0' in text
        ids = [response.headers["X-Request-Id"]]
        for i in range(20):
            request = urllib.request.Request(  # noqa: S310
                f"{base}/v1/models/churn:predict",
                json.dumps({"instances": FEATURES[:1].tolist()}).encode(),
                {"Content-Type": "application/json", **({"X-Request-Id": "chosen-by-the-client"} if i == 7 else {})},
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                ids.append(response.headers["X-Request-Id"])
        assert "chosen-by-the-client" in ids and "from-the-environment" not in ids
        assert PredictionLog.objects.count() == 0  # still with the writer
        # As Docker, Kubernetes and ./portal up stop it: SIGTERM to the main process only.
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=STOP_SECONDS + 5)
        finally:
            with contextlib.suppress(ProcessLookupError):  # what is left of the group: a writer, on failure
                os.killpg(server.proc.pid, signal.SIGKILL)
    logged = set(PredictionLog.objects.values_list("request_id", flat=True))
    assert logged == set(ids), server.output()[-3000:]
