"""The model server's prediction log (queued on the request path, written in batches) and its load reports."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client import CollectorRegistry

from deployments import services
from deployments.models import DeploymentRevision, PredictionLog, Strategy
from deployments.server import predlog
from deployments.server.app import ModelServer
from deployments.server.predlog import PredictionLogger
from registry.models import RegisteredModel
from tests.deployments.conftest import FEATURES, add_version, keras_saver, serve_now
from tests.deployments.test_model_server import call, trained

ROWS = FEATURES.tolist()
PREDICT = "/v1/models/churn:predict"


@pytest.fixture
def served(
    registered_model: RegisteredModel, editor: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelServer, DeploymentRevision]:
    version = add_version(registered_model, editor, keras_saver(trained(1), tmp_path_factory))
    deployment = services.create_deployment("churn", registered_model, str(version.version), owner=editor)
    revision = serve_now(deployment, actor=editor)
    app = ModelServer(CollectorRegistry())
    app.refresh()
    return app, revision


def only_log() -> PredictionLog:
    (log,) = PredictionLog.objects.all()
    return log


def test_it_logs_every_answered_prediction_with_its_request_id(
    served: Any, django_assert_num_queries: Any, settings: Any
) -> None:
    settings.MODEL_SERVER_LOG_INPUT_SAMPLE_RATE = 1.0
    app, revision = served
    body = {"instances": ROWS}
    with django_assert_num_queries(0):  # the request only queues the row
        status, headers, answer = call(app, "POST", PREDICT, body)
    assert status == 200
    assert (app.prediction_log.pending(), PredictionLog.objects.count()) == (1, 0)

    assert app.prediction_log.flush() == 1
    log = only_log()
    assert log.request_id == headers["X-Request-Id"]
    assert (log.deployment_id, log.revision_id, log.model_version, log.arm) == (
        revision.deployment_id, revision.pk, 1, "stable",
    )  # fmt: skip
    assert (log.status, log.error, log.rows) == (200, "", len(ROWS))
    assert log.latency_ms > 0
    assert log.inputs == body
    assert log.outputs == answer["predictions"]
    assert app.prediction_log.pending() == 0


def test_a_request_that_breaks_the_signature_is_logged_as_bad_input(served: Any) -> None:
    app, revision = served
    status, headers, _ = call(app, "POST", "/invocations", {"instances": [[1.0, "lots"]]})
    assert status == 400
    app.prediction_log.flush()
    log = only_log()
    assert (log.request_id, log.revision_id) == (headers["X-Request-Id"], revision.pk)
    assert (log.status, log.error, log.rows, log.outputs) == (400, "bad_input", 0, None)


def test_a_request_for_an_unknown_deployment_is_not_logged(served: Any) -> None:
    app, _ = served
    assert call(app, "POST", "/v1/models/nope:predict", {"instances": ROWS})[0] == 404
    assert app.prediction_log.pending() == 0
    assert app.prediction_log.flush() == 0
    assert not PredictionLog.objects.exists()


def test_unsampled_inputs_are_left_out_but_the_outputs_are_kept(served: Any, settings: Any) -> None:
    settings.MODEL_SERVER_LOG_INPUT_SAMPLE_RATE = 0.0
    app, _ = served
    answer = call(app, "POST", PREDICT, {"instances": ROWS})[2]
    app.prediction_log.flush()
    log = only_log()
    assert log.inputs is None
    assert log.outputs == answer["predictions"]
    assert log.rows == len(ROWS)


def test_a_body_over_the_log_size_limit_is_not_logged_as_inputs(served: Any, settings: Any) -> None:
    settings.MODEL_SERVER_LOG_INPUT_SAMPLE_RATE = 1.0
    settings.MODEL_SERVER_LOG_MAX_BODY_BYTES = 16
    app, _ = served
    assert call(app, "POST", PREDICT, {"instances": ROWS})[0] == 200
    app.prediction_log.flush()
    log = only_log()
    assert (log.status, log.inputs) == (200, None)
    assert log.outputs is not None


def test_requests_on_the_canary_are_logged_on_the_canary_arm(
    registered_model: RegisteredModel, editor: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    v1 = add_version(registered_model, editor, keras_saver(trained(1), tmp_path_factory))
    v2 = add_version(registered_model, editor, keras_saver(trained(2), tmp_path_factory))
    deployment = services.create_deployment(
        "churn", registered_model, "1", owner=editor, strategy=Strategy.CANARY, canary_steps=[50, 100]
    )
    baseline = serve_now(deployment, v1, actor=editor)
    rollout = services.shift_traffic(services.deploy(deployment, v2, actor=editor), 0)
    candidate = rollout.revision
    assert rollout.current_weight == 50
    app = ModelServer(CollectorRegistry())
    app.refresh()

    keys = [f"client-{i}" for i in range(20)]
    for key in keys * 2:  # twice: a routing key sticks to its arm
        assert call(app, "POST", PREDICT, {"instances": ROWS}, X_Routing_Key=key, X_Request_Id=key)[0] == 200
    assert app.prediction_log.flush() == 2 * len(keys)

    arms: dict[str, set[tuple[int, str, int]]] = {}
    for log in PredictionLog.objects.all():
        arms.setdefault(log.request_id, set()).add((log.revision_id, log.arm, log.model_version))
    assert set(arms) == set(keys)
    assert all(len(seen) == 1 for seen in arms.values())
    logged = {next(iter(seen)) for seen in arms.values()}
    assert logged == {(candidate.pk, "canary", 2), (baseline.pk, "stable", 1)}


def test_refresh_reports_which_revisions_loaded_and_why_the_others_did_not(
    served: Any, registered_model: RegisteredModel, editor: Any, django_assert_num_queries: Any
) -> None:
    app, revision = served
    revision.refresh_from_db()
    assert revision.loaded_at is not None
    assert revision.load_error == ""
    loaded_at = revision.loaded_at

    # An MLmodel without a Keras flavour loads by unpickling, which the server refuses by default.
    version = add_version(registered_model, editor)
    broken = serve_now(
        services.create_deployment("broken", registered_model, str(version.version), owner=editor), actor=editor
    )
    app.refresh()
    broken.refresh_from_db()
    assert broken.loaded_at is None
    assert "MODEL_SERVER_ALLOWED_PICKLE_FLAVORS" in broken.load_error
    revision.refresh_from_db()
    assert revision.loaded_at == loaded_at
    # Reported once: a refresh with nothing new only reads (the active revisions, the rollouts in flight).
    with django_assert_num_queries(2):
        app.refresh()


# PredictionLogger ------------------------------------------------------------------------------------


def log_one(logger: PredictionLogger, revision: DeploymentRevision, request_id: str) -> None:
    logger.log(
        time=timezone.now(), request_id=request_id, deployment_id=revision.deployment_id, revision_id=revision.pk,
        model_version=1, latency_ms=1.5, status=200, rows=1, inputs=None, outputs=[1.0],
    )  # fmt: skip


def logged_ids() -> list[str]:
    return list(PredictionLog.objects.order_by("id").values_list("request_id", flat=True))


# A real transaction, not the test's savepoint: a failed flush closes the connection (close_old_connections).
@pytest.mark.django_db(transaction=True)
def test_a_failed_write_keeps_the_rows_and_writes_them_once_on_the_next_flush(
    revision: DeploymentRevision, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = PredictionLogger(60)
    log_one(logger, revision, "a")
    log_one(logger, revision, "b")
    from deployments.server import predlog

    real_insert = predlog._insert
    calls = []

    def down_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the database is down")
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(predlog, "_insert", down_once)
    assert logger.flush() == 0
    assert (logger.pending(), logger.written, logged_ids()) == (2, 0, [])

    log_one(logger, revision, "c")
    assert logger.flush() == 3
    assert logged_ids() == ["a", "b", "c"]  # the retried rows first, each once
    assert logger.flush() == 0
    assert (logger.pending(), logger.written, logged_ids()) == (0, 3, ["a", "b", "c"])


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_is_dropped_alone_and_the_rest_is_written(revision: DeploymentRevision) -> None:
    logger = PredictionLogger(60)
    log_one(logger, revision, "a")
    logger.log(
        time=timezone.now(), request_id="orphan", deployment_id=revision.deployment_id, revision_id=revision.pk + 999,
        model_version=1, latency_ms=1.0, status=200,
    )  # fmt: skip
    log_one(logger, revision, "c")
    assert logger.flush() == 2
    assert (logged_ids(), logger.refused, logger.pending()) == (["a", "c"], 1, 0)
    # NaN in a body: PostgreSQL's jsonb and SQLite's JSON check refuse it. The batch is then written row
    # by row, the NaN row is dropped alone, and the orphan in the same batch is still left out.
    logger.log(
        time=timezone.now(), request_id="nan", deployment_id=revision.deployment_id, revision_id=revision.pk,
        model_version=1, latency_ms=1.0, status=200, inputs={"instances": [[float("nan")]]},
    )  # fmt: skip
    logger.log(
        time=timezone.now(), request_id="orphan-2", deployment_id=revision.deployment_id, revision_id=revision.pk + 999,
        model_version=1, latency_ms=1.0, status=200,
    )  # fmt: skip
    log_one(logger, revision, "d")
    assert logger.flush() == 1
    assert (logged_ids(), logger.refused, logger.pending()) == (["a", "c", "d"], 3, 0)


@pytest.mark.django_db(transaction=True)
def test_a_row_without_the_optional_fields_is_written_with_the_models_defaults_in_the_batch(
    revision: DeploymentRevision, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = PredictionLogger(60)
    monkeypatch.setattr(logger, "_write_one_by_one", lambda batch: pytest.fail("the batch was refused"))
    logger.log(
        time=timezone.now(), request_id="bare", deployment_id=revision.deployment_id, revision_id=revision.pk,
        model_version=1, latency_ms=1.5, status=200,
    )  # fmt: skip
    log_one(logger, revision, "full")
    assert logger.flush() == 2
    bare = PredictionLog.objects.get(request_id="bare")
    assert (bare.arm, bare.error, bare.rows, bare.inputs, bare.outputs) == ("stable", "", 0, None, None)
    assert (bare.latency_ms, bare.status, bare.revision_id) == (1.5, 200, revision.pk)


def test_stop_writes_what_is_still_queued(revision: DeploymentRevision) -> None:
    logger = PredictionLogger(60)
    logger.start()
    log_one(logger, revision, "a")
    log_one(logger, revision, "b")
    logger.stop()
    assert logged_ids() == ["a", "b"]
    assert logger.pending() == 0


def test_beyond_the_queue_cap_the_oldest_rows_are_dropped_and_counted(
    revision: DeploymentRevision, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predlog, "MAX_QUEUED", 3)
    logger = PredictionLogger(60)
    for request_id in "abcde":
        log_one(logger, revision, request_id)
    assert (logger.pending(), logger.dropped) == (3, 2)
    assert logger.flush() == 3
    assert logged_ids() == ["c", "d", "e"]


def test_with_logging_off_the_server_has_no_writer_at_all(settings: Any) -> None:
    from prometheus_client import CollectorRegistry

    from deployments.server.app import ModelServer

    settings.MODEL_SERVER_LOG_PREDICTIONS = False
    assert ModelServer(registry=CollectorRegistry()).prediction_log is None  # no idle thread, nothing to stop
    settings.MODEL_SERVER_LOG_PREDICTIONS = True
    assert isinstance(ModelServer(registry=CollectorRegistry()).prediction_log, PredictionLogger)


@pytest.mark.django_db(transaction=True)
def test_json_and_times_come_back_as_they_were_logged(revision: DeploymentRevision) -> None:
    # The COPY writes JSON as text and aware datetimes as they are (predlog._copy_columns): what the
    # ORM reads back must be what was logged, awkward characters included.
    logger = PredictionLogger(60)
    inputs = {"text": 'tab\there "quoted" back\\slash\nnewline ü € \u2028', "nested": [1, 2.5, None, True, {"k": []}]}
    outputs = [[0.1, -1e-300, 12345.678], "label"]
    logged_at = timezone.now()
    logger.log(
        time=logged_at, request_id="awkward", deployment_id=revision.deployment_id, revision_id=revision.pk,
        model_version=1, latency_ms=1.5, status=200, inputs=inputs, outputs=outputs,
    )  # fmt: skip
    assert logger.flush() == 1
    row = PredictionLog.objects.get(request_id="awkward")
    assert (row.inputs, row.outputs, row.time) == (inputs, outputs, logged_at)
