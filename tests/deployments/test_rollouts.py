"""The rollout job, run in-process on real Keras models: validation, gates, canary steps, live health,
commands from users, and resuming or reconciling after a worker dies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from deployments import rollouts, services
from deployments.models import DeploymentRevision, PredictionLog, Rollout, RolloutStatus, Strategy
from jobs import runner
from jobs.models import Job, JobStatus
from jobs.services import cancel_job
from registry.models import RegisteredModel
from tests.conftest import bearer
from tests.datasets.factories import push
from tests.deployments.conftest import add_version, serve_now

API = "/api/v1/deployments/"


@pytest.fixture(autouse=True)
def fast_rollouts(settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False  # the test's transaction is invisible to another connection
    settings.JOB_HEARTBEAT_INTERVAL = 0.05
    settings.ROLLOUT_TICK_SECONDS = 0.05
    settings.ROLLOUT_WAIT_FOR_MODEL_SERVER = False  # no model server process here; tests/e2e has one
    settings.ROLLOUT_LATENCY_SAMPLES = 20
    return settings


def classifier(weights: list[float], bias: float) -> Any:
    """A logistic unit with fixed weights: no training, so every run scores the same."""

    def save(path: Path) -> None:
        import keras
        import mlflow.tensorflow
        from mlflow.models import infer_signature

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
        model.layers[0].set_weights([np.array([[weights[0]], [weights[1]]], dtype="float32"), np.array([bias])])
        example = np.array([[1.0, 1.0]], dtype="float32")
        mlflow.tensorflow.save_model(
            model, str(path), signature=infer_signature(example, model.predict(example, verbose=0)),
            input_example=example, pip_requirements=["tensorflow"],
        )  # fmt: skip

    return save


GOOD = classifier([4.0, 4.0], -5.8)  # predicts x0 + x1 > 1.45
BAD = classifier([-4.0, -4.0], 5.8)  # predicts the opposite

HOLDOUT = b"x0,x1,label\n" + b"".join(
    b"%.1f,%.1f,%d\n" % (a, b, int(a + b > 1.45)) for a in (0.0, 0.4, 1.0, 1.6) for b in (0.1, 0.5, 1.1, 2.0)
)


def run_job(rollout: Rollout) -> str:
    return runner.execute(rollout.job_id)


def deployment_of(model: RegisteredModel, editor: Any, **settings: Any) -> Any:
    return services.create_deployment("churn", model, "1", owner=editor, **settings)


def kinds(deployment: Any) -> list[str]:
    return list(deployment.events.order_by("id").values_list("kind", flat=True))


def test_an_all_at_once_deploy_validates_the_model_then_serves_it(
    registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor)
    rollout = services.deploy(deployment, actor=editor)
    assert (rollout.status, rollout.job.queue, rollout.job.type) == ("queued", "deployments", "deployments.rollout")
    assert services.active_revisions(deployment) == []  # nothing serves before the job says so
    assert run_job(rollout) == "succeeded"
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.SUCCEEDED
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(1, 100)]
    assert kinds(deployment) == ["created", "rollout_started", "validated", "traffic_shifted", "promoted"]
    validated = deployment.events.get(kind="validated")
    assert validated.detail["example_rows"] == 1 and "input example" in validated.detail["message"]
    assert Job.objects.get(pk=rollout.job_id).progress == 100


def test_a_model_that_would_need_unpickling_fails_validation_and_the_old_version_keeps_serving(
    registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor)  # an MLmodel with no Keras flavour: python_function, a pickle
    deployment = deployment_of(registered_model, editor)
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    assert run_job(rollout) == "failed"
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED and "MODEL_SERVER_ALLOWED_PICKLE_FLAVORS" in rollout.reason
    assert "MODEL_SERVER_ALLOWED_PICKLE_FLAVORS" in Job.objects.get(pk=rollout.job_id).error
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(1, 100)]
    assert kinds(deployment)[-1] == "rollout_failed"


def test_the_accuracy_and_champion_gates_score_the_holdout(registered_model: RegisteredModel, editor: Any) -> None:
    holdout = push("holdout", HOLDOUT, filename="holdout.csv", author=editor)
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, BAD)
    deployment = deployment_of(
        registered_model, editor, holdout_dataset_version=holdout, target_column="label", min_accuracy=0.9,
        champion_margin=0.05, latency_budget_ms=1000,
    )  # fmt: skip
    first = services.deploy(deployment, 1, actor=editor)
    assert run_job(first) == "succeeded", Job.objects.get(pk=first.job_id).error
    first.refresh_from_db()
    assert {g["name"]: (g["passed"], g.get("value")) for g in first.gates} == {
        "validation": (True, None),
        "holdout_accuracy": (True, 1.0),
        "latency": (True, ANY),  # its value is bounded below
    }
    assert first.gates[-1]["name"] == "latency" and 0 < first.gates[-1]["value"] <= 1000
    second = services.deploy(deployment, 2, actor=editor)
    assert run_job(second) == "failed"
    second.refresh_from_db()
    gates = {g["name"]: g for g in second.gates}
    assert (gates["holdout_accuracy"]["passed"], gates["holdout_accuracy"]["value"]) == (False, 0.0)
    assert (gates["champion"]["passed"], gates["champion"]["champion"], gates["champion"]["threshold"]) == (
        False, 1.0, 0.95,
    )  # fmt: skip
    assert second.status == RolloutStatus.FAILED and "holdout_accuracy" in second.reason
    assert [r.model_version.version for r in services.active_revisions(deployment)] == [1]
    failed = deployment.events.filter(kind="gate_failed").values_list("detail__gate", flat=True)
    assert sorted(failed) == ["champion", "holdout_accuracy"]


def test_a_holdout_without_the_label_column_fails_the_rollout_naming_it(
    registered_model: RegisteredModel, editor: Any
) -> None:
    holdout = push("holdout", HOLDOUT, filename="holdout.csv", author=editor)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, holdout_dataset_version=holdout, target_column="churned")
    rollout = services.deploy(deployment, actor=editor)
    assert run_job(rollout) == "failed"
    rollout.refresh_from_db()
    assert "no column 'churned'" in rollout.reason and "x0, x1, label" in rollout.reason


def test_a_canary_walks_its_steps_and_is_promoted_when_healthy(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(
        registered_model, editor, strategy=Strategy.CANARY, canary_steps=[25, 50, 100], bake_seconds=1
    )
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    assert (rollout.steps, rollout.bake_seconds, rollout.baseline.model_version.version) == ([25, 50, 100], 1, 1)
    started = timezone.now()
    assert run_job(rollout) == "succeeded"
    shifts = deployment.events.filter(kind="traffic_shifted", detail__rollout=rollout.pk).order_by("id")
    assert [e.detail["weights"] for e in shifts] == [
        {"candidate": 25, "baseline": 75},
        {"candidate": 50, "baseline": 50},
        {"candidate": 100, "baseline": 0},
    ]
    assert timezone.now() - started >= timedelta(seconds=3)  # each step baked for its second
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(2, 100)]


def test_an_unhealthy_canary_is_rolled_back_automatically(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(
        registered_model, editor, strategy=Strategy.CANARY, canary_steps=[10, 100], bake_seconds=30,
        max_error_rate=0.1, min_canary_requests=10,
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    # Traffic the model server will log once the canary takes its share: 4 errors in 12 answers.
    later = timezone.now() + timedelta(minutes=1)
    PredictionLog.objects.bulk_create(
        PredictionLog(
            time=later,
            request_id=f"r{i}",
            deployment=deployment,
            revision=rollout.revision,
            model_version=2,
            arm="canary",
            latency_ms=3.0,
            status=500 if i < 4 else 200,
        )
        for i in range(12)
    )
    assert run_job(rollout) == "failed"
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.ROLLED_BACK
    assert "error rate 33.3% over 12 requests" in rollout.reason
    assert rollout.health["candidate"] == {"requests": 12, "errors": 4, "error_rate": 0.3333, "p95_ms": 3.0}
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(1, 100)]
    rolled = deployment.events.filter(kind="rolled_back").get()
    assert (rolled.from_version, rolled.to_version, rolled.actor_name) == (2, 1, "system")


def test_a_canary_with_too_little_traffic_is_not_judged(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, min_canary_requests=10)
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 1, actor=editor)
    rollout = services.shift_traffic(rollout, 0)
    PredictionLog.objects.create(
        time=timezone.now(), request_id="x", deployment=deployment, revision=rollout.revision, model_version=1,
        latency_ms=1.0, status=500,
    )  # fmt: skip
    health = rollouts.live_health(rollout)
    assert health["candidate"]["requests"] == 1
    assert rollouts.health_verdict(rollout, health) is None


def test_users_pause_resume_promote_and_roll_back_over_the_api(
    registered_model: RegisteredModel, editor: Any, viewer: Any
) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, strategy=Strategy.CANARY, canary_steps=[10, 100])
    serve_now(deployment, 1, actor=editor)
    api = Client(**bearer(editor))
    started = api.post(f"{API}churn/deploy/", {"version": 2}, content_type="application/json")
    assert started.status_code == 201, started.content
    assert (started.json()["status"], started.json()["baseline_version"]) == ("queued", 1)
    again = api.post(f"{API}churn/deploy/", {"version": 2}, content_type="application/json")
    assert again.status_code == 409 and "in progress" in again.json()["error"]["message"]
    early = api.post(f"{API}churn/promote/")
    assert early.status_code == 400 and "gates" in early.json()["error"]["message"]
    rollout = services.shift_traffic(Rollout.objects.get(pk=started.json()["id"]), 0)  # as the job's first step
    assert Client(**bearer(viewer)).post(f"{API}churn/pause/").status_code == 403
    paused = api.post(f"{API}churn/pause/")
    assert (paused.status_code, paused.json()["paused"], paused.json()["traffic_weight"]) == (200, True, 10)
    assert api.post(f"{API}churn/pause/").status_code == 400
    assert api.post(f"{API}churn/resume/").json()["paused"] is False
    promoted = api.post(f"{API}churn/promote/")
    assert (promoted.status_code, promoted.json()["status"]) == (200, "succeeded")
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(2, 100)]
    assert run_job(rollout) == "succeeded"  # the job finds its rollout ended and stops quietly
    # A second rollout, rolled back by hand while its canary serves 10 %.
    third = api.post(f"{API}churn/deploy/", {"version": 1}, content_type="application/json").json()
    services.shift_traffic(Rollout.objects.get(pk=third["id"]), 0)
    back = api.post(f"{API}churn/rollback/", {}, content_type="application/json")
    assert (back.status_code, back.json()["status"], back.json()["reason"]) == (
        200,
        "rolled_back",
        "rolled back by hand",
    )
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(2, 100)]
    assert kinds(deployment)[-2:] == ["traffic_shifted", "rolled_back"]
    listed = api.get(f"{API}churn/rollouts/").json()["results"]
    assert [r["status"] for r in listed] == ["rolled_back", "succeeded", "succeeded"]
    none_left = api.post(f"{API}churn/pause/")
    assert none_left.status_code == 400 and none_left.json()["error"]["field"] == "rollout"


def test_a_job_that_resumes_carries_on_from_the_stored_step(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, strategy=Strategy.CANARY, canary_steps=[10, 50, 100])
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    # The first attempt validated, gated and moved to 50 % before its worker died.
    Rollout.objects.filter(pk=rollout.pk).update(status=RolloutStatus.ROLLING_OUT, bake_seconds=0)
    services.shift_traffic(rollout, 1)
    assert run_job(rollout) == "succeeded"
    shifts = deployment.events.filter(kind="traffic_shifted", detail__rollout=rollout.pk)
    assert sorted(e.detail["traffic_weight"] for e in shifts) == [50, 100]  # 10 % was not walked again
    assert not deployment.events.filter(kind="validated", detail__rollout=rollout.pk).exists()


def test_a_rollout_whose_job_ended_gives_the_traffic_back(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, strategy=Strategy.CANARY, canary_steps=[10, 100])
    serve_now(deployment, 1, actor=editor)
    rollout = services.shift_traffic(services.deploy(deployment, 2, actor=editor), 0)
    Job.objects.filter(pk=rollout.job_id).update(status=JobStatus.FAILED, error="worker died; no attempts left")
    assert services.reconcile_rollouts() == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.ROLLED_BACK and "worker died" in rollout.reason
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(1, 100)]
    assert services.reconcile_rollouts() == []


def test_cancelling_the_job_ends_the_rollout(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor)
    rollout = services.deploy(deployment, actor=editor)
    cancel_job(rollout.job, actor=editor)
    services.reconcile_rollouts()
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED and "cancelled" in rollout.reason
    assert not DeploymentRevision.objects.filter(deployment=deployment, state="active").exists()


@pytest.mark.parametrize(
    ("predictions", "truth", "expected"),
    [
        ([[0.2, 0.8], [0.9, 0.1]], [1, 0], ("accuracy", 1.0)),
        ([[0.7], [0.2], [0.6]], [1, 0, 0], ("accuracy", 2 / 3)),
        ([[1.0], [2.0], [3.0]], [1.0, 2.0, 3.5], ("r2", 1 - 0.25 / (19 / 6))),
        (["a", "b"], ["a", "a"], ("accuracy", 0.5)),
    ],
)
def test_scores_are_accuracy_for_classifiers_and_r2_for_regressors(
    predictions: list[Any], truth: list[Any], expected: tuple[str, float]
) -> None:
    metric, value = rollouts.score(np.asarray(predictions), np.asarray(truth, dtype=object))
    assert (metric, value) == (expected[0], pytest.approx(expected[1]))


def test_blue_green_keeps_blue_loaded_at_zero_while_green_bakes_then_retires_it(
    registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, strategy=Strategy.BLUE_GREEN, bake_seconds=30)
    blue = serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    assert (rollout.steps, rollout.bake_seconds) == ([100], 30)
    rollout = services.shift_traffic(rollout, 0)  # what the job's single step does
    blue.refresh_from_db()
    assert (blue.state, blue.traffic_weight) == ("active", 0)  # still loaded: switching back is instant
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [
        (2, 100),
        (1, 0),
    ]
    Rollout.objects.filter(pk=rollout.pk).update(status=RolloutStatus.ROLLING_OUT, bake_seconds=0)
    assert run_job(rollout) == "succeeded"
    blue.refresh_from_db()
    assert (blue.state, blue.traffic_weight) == ("retired", 0)


def test_a_serving_version_that_cannot_be_scored_does_not_block_its_replacement(
    registered_model: RegisteredModel, editor: Any
) -> None:
    def three_inputs(path: Path) -> None:  # the old model took a third feature the holdout no longer has
        import keras
        import mlflow.tensorflow
        from mlflow.models import infer_signature

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        example = np.ones((1, 3), dtype="float32")
        signature = infer_signature(example, model.predict(example, verbose=0))
        mlflow.tensorflow.save_model(model, str(path), signature=signature, pip_requirements=["tensorflow"])

    holdout = push("holdout", HOLDOUT, filename="holdout.csv", author=editor)
    add_version(registered_model, editor, three_inputs)
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, holdout_dataset_version=holdout, target_column="label")
    serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    assert run_job(rollout) == "succeeded", Job.objects.get(pk=rollout.job_id).error
    rollout.refresh_from_db()
    champion = next(g for g in rollout.gates if g["name"] == "champion")
    assert champion["passed"] and champion["message"].startswith("not compared: version 1 could not be scored")


def test_rollback_goes_only_to_revisions_that_served(registered_model: RegisteredModel, editor: Any) -> None:
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor)  # fails validation: never serves
    add_version(registered_model, editor, GOOD)
    deployment = deployment_of(registered_model, editor, strategy=Strategy.CANARY, canary_steps=[10, 100])
    serve_now(deployment, 1, actor=editor)
    failed = services.deploy(deployment, 2, actor=editor)
    assert run_job(failed) == "failed"
    with pytest.raises(services.DeploymentError, match="never served traffic"):
        services.rollback(deployment, failed.revision, actor=editor)
    in_flight = services.shift_traffic(services.deploy(deployment, 3, actor=editor), 0)
    with pytest.raises(services.DeploymentError, match="promote it instead"):
        services.rollback(deployment, in_flight.revision, actor=editor)
    DeploymentRevision.objects.filter(pk=in_flight.revision_id).update(load_error="no such file")
    with pytest.raises(services.DeploymentError, match="cannot load the candidate"):
        services.command_rollout(in_flight, "promote", actor=editor)
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [
        (1, 90),
        (3, 10),
    ]
