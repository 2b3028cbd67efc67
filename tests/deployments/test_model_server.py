"""The model server's WSGI app, in-process, serving a real Keras model saved in MLflow format."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from deployments import services
from deployments.server.app import ModelServer
from registry.models import RegisteredModel
from tests.deployments.conftest import FEATURES, add_version, keras_saver, serve_now, train_keras


@functools.cache
def trained(seed: int) -> Any:
    return train_keras(seed)


def expected(seed: int) -> np.ndarray:
    return trained(seed)(FEATURES, training=False).numpy()


def call(app: ModelServer, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], Any]:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    environ.update({"CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(raw)})
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    setup_testing_defaults(environ)
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    payload = b"".join(app(environ, start_response))
    is_json = answer["headers"]["Content-Type"] == "application/json"
    return answer["status"], answer["headers"], json.loads(payload) if is_json else payload.decode()


@pytest.fixture
def served(
    registered_model: RegisteredModel, editor: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelServer, Any]:
    version = add_version(registered_model, editor, keras_saver(trained(1), tmp_path_factory))
    deployment = services.create_deployment("churn", registered_model, str(version.version), owner=editor)
    serve_now(deployment, actor=editor)
    app = ModelServer(CollectorRegistry())
    app.refresh()
    return app, deployment


ROWS = FEATURES.tolist()
COLUMNS = ["a", "b"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/churn:predict", {"instances": ROWS}),
        ("/v1/models/churn:predict", {"inputs": ROWS}),
        ("/invocations", {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}),
        ("/invocations", {"dataframe_records": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]}),
        ("/invocations", {"instances": ROWS}),
        ("/v1/models/churn/invocations", {"inputs": {"a": [r[0] for r in ROWS], "b": [r[1] for r in ROWS]}}),
    ],
)
def test_both_protocols_predict_what_the_model_itself_predicts(served: Any, path: str, body: Any) -> None:
    status, headers, answer = call(served[0], "POST", path, body)
    assert status == 200, answer
    np.testing.assert_allclose(np.array(answer["predictions"]), expected(1), rtol=1e-5, atol=1e-6)
    assert headers["X-Request-Id"]


def test_it_is_ready_and_reports_the_tf_serving_version_status(served: Any) -> None:
    app, _ = served
    assert call(app, "GET", "/health")[0] == 200
    status, _, body = call(app, "GET", "/ready")
    assert (status, body["deployments"]["churn"][0]["loaded"]) == (200, True)
    status, _, body = call(app, "GET", "/v1/models/churn")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_an_input_that_breaks_the_signature_is_a_400_naming_the_column(served: Any) -> None:
    app, _ = served
    bad = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "lots"]]}}
    status, _, body = call(app, "POST", "/invocations", bad)
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "column 'b'" in body["message"]
    status, _, body = call(app, "POST", "/v1/models/churn:predict", {"instances": [[1.0, 2.0, 3.0]]})
    assert status == 400
    assert "2 columns" in body["error"]
    status, _, body = call(app, "POST", "/invocations", {"dataframe_records": [{"a": 1.0}, {"a": 2.0, "b": None}]})
    assert status == 400 and "'b'" in body["message"]
    assert call(app, "POST", "/invocations", b"{not json")[0] == 400


def test_an_oversized_body_is_a_413(served: Any, settings: Any) -> None:
    settings.MODEL_SERVER_MAX_BODY_BYTES = 1024
    status, _, body = call(served[0], "POST", "/v1/models/churn:predict", {"instances": [[1.0, 2.0]] * 200})
    assert status == 413 and "1024 bytes" in body["error"]


def test_an_unknown_model_is_a_404_in_each_protocols_shape(served: Any) -> None:
    app, _ = served
    status, _, body = call(app, "POST", "/v1/models/nope:predict", {"instances": ROWS})
    assert (status, body) == (404, {"error": "Servable not found for request: Latest(nope)"})
    assert call(app, "GET", "/v1/models/nope")[0] == 404
    status, _, body = call(app, "POST", "/v1/models/nope/invocations", {"instances": ROWS})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, _, body = call(app, "POST", "/invocations?deployment=nope", {"instances": ROWS})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_metrics_count_latency_predictions_and_errors_by_deployment_and_version(served: Any) -> None:
    app, _ = served
    call(app, "POST", "/v1/models/churn:predict", {"instances": ROWS})
    call(app, "POST", "/invocations", {"instances": [[1.0, "x"]]})
    _, headers, text = call(app, "GET", "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    assert (
        'http_request_duration_seconds_count{deployment="churn",model_version="1",'
        'route="/v1/models/{name}:predict",status="200"} 1.0'
    ) in text
    assert 'model_predictions_total{deployment="churn",model_version="1"} 5.0' in text
    assert 'model_prediction_errors_total{deployment="churn",model_version="1",reason="bad_input"} 1.0' in text


def test_every_response_carries_a_request_id_and_echoes_the_callers(served: Any) -> None:
    app, _ = served
    assert call(app, "GET", "/nowhere")[1]["X-Request-Id"]
    assert call(app, "GET", "/health", X_Request_Id="abc-123")[1]["X-Request-Id"] == "abc-123"


def test_it_swaps_to_a_new_revision_after_loading_it(
    served: Any, registered_model: RegisteredModel, editor: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app, deployment = served
    v2 = add_version(registered_model, editor, keras_saver(trained(2), tmp_path_factory))
    before = app.table
    serve_now(deployment, v2, actor=editor)
    # Until the refresh, the old revision keeps answering.
    np.testing.assert_allclose(
        call(app, "POST", "/invocations", {"instances": ROWS})[2]["predictions"], expected(1), rtol=1e-5
    )
    app.refresh()
    assert app.table is not before
    body = call(app, "POST", "/invocations", {"instances": ROWS})[2]
    np.testing.assert_allclose(body["predictions"], expected(2), rtol=1e-5, atol=1e-6)
    assert call(app, "GET", "/v1/models/churn")[2]["model_version_status"][0]["version"] == "2"


def test_with_several_deployments_invocations_needs_a_name(
    served: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    app, _ = served
    serve_now(services.create_deployment("churn-b", registered_model, "1", owner=editor), actor=editor)
    app.refresh()
    assert call(app, "POST", "/invocations", {"instances": ROWS})[0] == 400
    assert call(app, "POST", "/invocations", {"instances": ROWS}, X_Deployment="churn-b")[0] == 200


def test_a_pickled_flavour_is_refused_unless_an_admin_allows_it(registered_model: RegisteredModel, editor: Any) -> None:
    def sklearn_model(path: Path) -> None:
        path.mkdir(parents=True)
        (path / "MLmodel").write_text("flavors:\n  sklearn: {pickled_model: model.pkl}\n  python_function: {}\n")

    version = add_version(registered_model, editor, sklearn_model)
    serve_now(services.create_deployment("pickled", registered_model, "1", owner=editor), version, actor=editor)
    app = ModelServer(CollectorRegistry())
    app.refresh()
    status, _, body = call(app, "GET", "/ready")
    assert status == 503 and "MODEL_SERVER_ALLOWED_PICKLE_FLAVORS" in body["deployments"]["pickled"][0]["error"]
    status, _, body = call(app, "GET", "/v1/models/pickled")
    assert body["model_version_status"][0]["status"]["error_code"] == "UNKNOWN"


def test_the_web_process_never_imports_the_model_loader() -> None:
    code = (
        "import django, sys; django.setup(); import mlops_portal.urls; "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "sys.exit(int(any(m.startswith('deployments.server') or m == 'keras' for m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_deployment_whose_new_revision_cannot_load_keeps_answering_with_the_old_one(
    served: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    app, deployment = served
    broken = add_version(registered_model, editor)  # no Keras flavour: refused without unpickling
    old = deployment.revisions.get()
    old.state, old.traffic_weight = "retired", 0
    old.save()
    deployment.revisions.create(model_version=broken, state="active", traffic_weight=100)
    app.refresh()
    status, _, body = call(app, "POST", "/v1/models/churn:predict", {"instances": ROWS})
    assert status == 200 and len(body["predictions"]) == len(ROWS)
    assert [s.version for s in app.table["churn"]] == [1]
