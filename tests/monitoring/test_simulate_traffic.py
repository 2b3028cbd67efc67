"""`manage.py simulate_traffic` against a real model server over HTTP (in a thread of this process, on
the test database): predictions logged, labels sent after the delay, drift applied, rollups filled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django.core.management import CommandError, call_command
from prometheus_client import CollectorRegistry

from deployments import services
from deployments.models import PredictionLog
from deployments.server.app import ModelServer
from monitoring import rollups
from monitoring.models import Feedback, MinuteRollup
from registry import services as registry
from tests.datasets.factories import push
from tests.deployments.conftest import add_version, serve_now
from tests.deployments.test_rollouts import GOOD, HOLDOUT


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def served(editor: Any, store: Any, settings: Any) -> Iterator[tuple[str, Any, ModelServer]]:
    holdout = push("holdout", HOLDOUT, filename="holdout.csv", author=editor)
    model = registry.create_registered_model("clf", owner=editor)
    add_version(model, editor, GOOD)
    deployment = services.create_deployment(
        "clf-prod", model, "1", owner=editor, holdout_dataset_version=holdout, target_column="label"
    )
    serve_now(deployment, 1, actor=editor)
    app = ModelServer(CollectorRegistry())
    app.refresh()
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", deployment, app
    finally:
        server.shutdown()


def test_it_sends_traffic_and_the_labels_that_make_accuracy(served: Any, capsys: Any) -> None:
    url, deployment, app = served
    call_command("simulate_traffic", deployment="clf-prod", rps=40, duration=1, label_delay=0.2, url=url)
    assert "sent 40 requests to clf-prod (40 answered 200, 0 failed) and 40 labels" in capsys.readouterr().out
    app.prediction_log.flush()
    assert PredictionLog.objects.filter(deployment=deployment, status=200).count() == 40
    assert Feedback.objects.count() == 40
    rollups.fill_rollups()
    totals = MinuteRollup.objects.filter(deployment=deployment)
    assert sum(r.requests for r in totals) == 40
    assert sum(r.correct for r in totals) == sum(r.labelled for r in totals) == 40  # the model is right on it


def test_drift_shifts_the_named_feature(served: Any) -> None:
    url, _deployment, app = served
    call_command("simulate_traffic", deployment="clf-prod", rps=20, duration=0.5, drift=["x0:100"], url=url)
    app.prediction_log.flush()
    inputs = [row["instances"][0] for row in PredictionLog.objects.values_list("inputs", flat=True)]
    assert inputs and all(row["x0"] >= 100 for row in inputs) and all(row["x1"] < 100 for row in inputs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"deployment": "nope"}, "no deployment named 'nope'"),
        ({"deployment": "clf-prod", "rps": 0}, "--rps must be between"),
        ({"deployment": "clf-prod", "drift": ["x9:1"]}, "--drift names 'x9'"),
        ({"deployment": "clf-prod", "drift": ["x0"]}, "--drift takes FEATURE:SHIFT"),
    ],
)
def test_bad_options_are_refused_naming_them(served: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("simulate_traffic", **options)
