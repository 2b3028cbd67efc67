"""The closed loop with every real part but the model server (a Celery worker and beat on Redis, PostgreSQL):
a drift alert on a deployment starts the retrain pipeline on the newest dataset version, whose challenger
passes the evaluation gate against the champion and goes out as a canary to promotion; a storm of alerts
starts one retrain; a worse challenger is stopped by the rollout's gate and the champion keeps serving."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from datasets.models import DatasetVersion
from deployments import services as deployments
from deployments.models import Rollout, RolloutStatus, Strategy
from deployments.services import active_revisions
from experiments import services as tracking
from experiments.training.services import start_training_job
from jobs import runner
from monitoring.models import AlertRule, DriftResult
from pipelines import engine, services
from pipelines.models import PipelineRun, RunStatus, Trigger
from registry import services as registry
from tests.datasets.factories import push
from tests.experiments.test_training import churn_csv
from tests.services import running, start_beat, start_worker, wait_until

pytestmark = pytest.mark.e2e

RETRAIN = {
    "params": {"epochs": 8, "lr": 0.03, "margin": 0.0},
    "steps": [
        {"name": "validate", "type": "validate_dataset", "args": {"dataset": "churn", "columns": ["churned"]}},
        {"name": "train", "type": "train", "needs": ["validate"],
         "args": {"experiment": "retrain", "dataset": "churn", "version": "{{ steps.validate.outputs.version }}",
                  "target": "churned", "trainer": "keras_mlp_classifier", "seed": 5,
                  "params": {"epochs": "{{ params.epochs }}", "learning_rate": "{{ params.lr }}", "hidden_units": [16],
                             "early_stopping_patience": 0}}},
        {"name": "evaluate", "type": "evaluate", "needs": ["train"],
         "args": {"candidate": "{{ steps.train.outputs.model }}", "dataset": "churn", "target": "churned",
                  "champion": "churn", "alias": "champion", "min_improvement": "{{ params.margin }}"}},
        {"name": "register", "type": "register", "needs": ["evaluate"],
         "args": {"model": "churn", "source": "{{ steps.train.outputs.model }}"}},
        {"name": "deploy", "type": "deploy", "needs": ["register"],
         "args": {"deployment": "churn-api", "version": "{{ steps.register.outputs.version }}"}},
    ],
}  # fmt: skip


def _champion(editor: Any) -> Any:
    """Model v1, trained in this process on the first dataset version with a weak setting, serving."""
    version = push("churn", churn_csv(1500), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("bootstrap", owner=editor)
    job = start_training_job(experiment, dataset_version=version, target="churned", trainer="keras_linear_classifier",
                             params={"epochs": 1, "learning_rate": 0.001}, seed=1, requested_by=editor)  # fmt: skip
    assert runner.execute(job.pk) == "succeeded"
    job.refresh_from_db()
    first = registry.register_source(editor, "churn", job.result["model"])
    registry.set_alias(first.model, "champion", first, actor=editor)
    deployment = deployments.create_deployment(
        "churn-api", first.model, "champion", owner=editor, strategy=Strategy.CANARY, canary_steps=[50, 100],
        bake_seconds=2, holdout_dataset_version=version, target_column="churned", champion_margin=0.0,
        min_canary_requests=1_000_000,  # no traffic here: the canary steps pass on their bake time
    )  # fmt: skip
    rollout = deployments.deploy(deployment, 1, actor=editor)
    deployments.complete_rollout(deployments.shift_traffic(rollout, len(rollout.steps) - 1), actor=editor)
    return deployment


def _drift(deployment: Any, rules: int) -> None:
    """What the drift job writes when live inputs move, and rules that fire on it."""
    now = timezone.now()
    for n in range(rules):
        AlertRule.objects.create(deployment=deployment, name=f"drift {n}", metric="drift_psi", comparator=">",
                                 threshold=0.2, window_minutes=5, for_minutes=0, owner=deployment.owner)  # fmt: skip
    DriftResult.objects.bulk_create(
        DriftResult(deployment=deployment, window_end=now, window_epoch_minute=int(now.timestamp()) // 60,
                    window_minutes=60, feature=feature, kind="numeric", n=500, psi=psi, severity="major")
        for feature, psi in (("age", 0.45), ("spend", 0.31))
    )  # fmt: skip


def test_a_drift_alert_retrains_gates_canaries_and_promotes_and_a_worse_challenger_is_stopped(
    e2e_env: dict[str, str], editor: Any, settings: Any, tmp_path: Path
) -> None:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    e2e_env.update({"ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT), "ROLLOUT_WAIT_FOR_MODEL_SERVER": "false",
                    "ROLLOUT_TICK_SECONDS": "0.2", "ALERT_EVAL_SECONDS": "5", "PIPELINE_TICK_SECONDS": "2",
                    "DRIFT_INTERVAL_SECONDS": "3600"})  # fmt: skip
    deployment = _champion(editor)
    push("churn", churn_csv(1800), filename="churn.csv", author=editor)  # the newest data
    version, _ = services.save_definition("retrain", RETRAIN, actor=editor)
    services.create_trigger(version.pipeline, "alert", "churn-api", cooldown_seconds=3600, actor=editor)
    _drift(deployment, rules=3)  # three rules firing at once: a storm

    beat, worker = start_beat(e2e_env), start_worker(e2e_env)
    with running(beat, worker):
        wait_until(lambda: PipelineRun.objects.exists(), timeout=60, message="an alert to start the retrain")
        wait_until(lambda: PipelineRun.objects.get().is_finished, timeout=300, message="the retrain to finish")
        run = PipelineRun.objects.get()
        steps = {s.name: s for s in run.steps.all()}
        assert run.status == RunStatus.SUCCEEDED, ({n: s.error for n, s in steps.items()}, worker.output())
        assert run.trigger == "alert" and run.trigger_details["event"]["deployment"] == "churn-api"
        assert steps["validate"].outputs["version"] == 2  # the newest dataset version
        assert steps["evaluate"].outputs["score"] >= steps["evaluate"].outputs["champion_score"]
        assert steps["register"].outputs["version"] == 2
        rollout = Rollout.objects.get(revision__model_version__version=2)
        assert rollout.status == RolloutStatus.SUCCEEDED and rollout.strategy == Strategy.CANARY
        assert [r.model_version.version for r in active_revisions(deployment)] == [2]  # promoted
        assert PipelineRun.objects.count() == 1  # one retrain for the storm of three alerts

        # A worse challenger (one epoch at a tiny learning rate), let through the evaluation gate on purpose,
        # is stopped by the rollout's own gate against the serving model: version 2 keeps serving.
        worse = engine.start_run(version.pipeline, params={"epochs": 1, "lr": 0.00001, "margin": -1.0},
                                 requested_by=editor)  # fmt: skip
        wait_until(lambda: PipelineRun.objects.get(pk=worse.pk).is_finished, timeout=300, message="the second run")
    worse.refresh_from_db()
    steps = {s.name: s for s in worse.steps.all()}
    assert worse.status == RunStatus.FAILED and steps["validate"].status == "cached"
    assert steps["deploy"].status == "failed" and "gate champion" in steps["deploy"].error, steps["deploy"].error
    assert [r.model_version.version for r in active_revisions(deployment)] == [2]
    assert Rollout.objects.get(revision__model_version__version=3).status in (
        RolloutStatus.FAILED, RolloutStatus.ROLLED_BACK,
    )  # fmt: skip
    assert Trigger.objects.get().last_fired_at > timezone.now() - timedelta(minutes=10)
    assert DatasetVersion.objects.count() == 2
