"""A real pipeline on real data: validate a dataset version, train on it, evaluate the challenger against
the registered champion, register it; and the evaluation gate saying no."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines import engine, services
from pipelines.models import RunStatus
from tests.datasets.factories import push
from tests.experiments.test_training import churn_csv

RETRAIN = {
    "params": {"dataset": "churn", "epochs": 6, "margin": 0.0},
    "steps": [
        {"name": "validate", "type": "validate_dataset",
         "args": {"dataset": "{{ params.dataset }}", "columns": ["churned"], "min_rows": 100}},
        {"name": "train", "type": "train", "needs": ["validate"],
         "args": {"experiment": "churn-pipeline", "dataset": "{{ params.dataset }}",
                  "version": "{{ steps.validate.outputs.version }}", "target": "churned",
                  "trainer": "keras_mlp_classifier", "params": {"epochs": "{{ params.epochs }}", "hidden_units": [16]},
                  "seed": 3}},
        {"name": "evaluate", "type": "evaluate", "needs": ["train"],
         "args": {"candidate": "{{ steps.train.outputs.model }}", "dataset": "{{ params.dataset }}",
                  "target": "churned", "champion": "churn", "min_improvement": "{{ params.margin }}"}},
        {"name": "register", "type": "register", "needs": ["evaluate"],
         "args": {"model": "churn", "source": "{{ steps.train.outputs.model }}", "alias": "champion"}},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> None:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()


def test_validate_train_evaluate_and_register_then_the_gate_refuses_a_worse_challenger(
    editor: Any, sent: list[int], drive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from registry.models import RegisteredModel

    push("churn", churn_csv(400), filename="churn.csv", author=editor)
    version, _ = services.save_definition("retrain", RETRAIN, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        first = engine.start_run(version.pipeline, requested_by=editor)
    drive()
    first.refresh_from_db()
    steps = {s.name: s for s in first.steps.all()}
    assert first.status == RunStatus.SUCCEEDED, {n: s.error for n, s in steps.items()}
    assert steps["validate"].outputs == {"dataset": "churn", "version": 1, "rows": 400}
    assert steps["train"].job.type == "experiments.train" and steps["train"].outputs["model"].startswith("runs:/")
    assert steps["evaluate"].outputs["metric"] == "accuracy" and steps["evaluate"].outputs["champion_score"] is None
    model = RegisteredModel.objects.get(name="churn")
    registered = model.versions.get()
    assert registered.run_id == steps["train"].outputs["run_id"] and model.aliases.get().alias == "champion"

    # A worse challenger (one epoch at a tiny learning rate) is stopped by the gate: nothing registered.
    with django_capture_on_commit_callbacks(execute=True):
        second = engine.start_run(version.pipeline, params={"epochs": 1, "margin": 0.05}, requested_by=editor)
    drive()
    second.refresh_from_db()
    steps = {s.name: s for s in second.steps.all()}
    assert second.status == RunStatus.FAILED
    assert steps["validate"].status == "cached"  # same dataset version, same checks
    assert steps["evaluate"].status == "failed" and "does not beat the champion's (v1)" in steps["evaluate"].error
    assert steps["register"].status == "upstream_failed" and model.versions.count() == 1
