"""Accuracy from feedback in a canary's live judgment: a candidate worse than the baseline by more than the
margin is rolled back by the rollout job; with too few labels, accuracy does not judge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from deployments import services
from deployments.models import PredictionLog, Rollout, RolloutStatus, Strategy
from jobs import runner
from monitoring import canary
from monitoring import services as monitoring
from registry import services as registry
from tests.deployments.conftest import add_version, serve_now
from tests.deployments.test_rollouts import GOOD, fast_rollouts  # noqa: F401  (a fixture)


def labelled_traffic(rollout: Rollout, editor: Any, *, candidate_right: int, baseline_right: int, n: int = 20) -> None:
    later = timezone.now() + timedelta(minutes=1)  # after the step starts
    rows = []
    for revision, arm in ((rollout.revision, "canary"), (rollout.baseline, "stable")):
        for i in range(n):
            rows.append(PredictionLog(
                time=later, request_id=f"{arm}-{i}", deployment=rollout.deployment, revision=revision,
                model_version=revision.model_version.version, arm=arm, latency_ms=1.0, status=200, outputs=[[0.9]],
            ))  # fmt: skip
    PredictionLog.objects.bulk_create(rows)
    feedback = [{"request_id": f"canary-{i}", "label": int(i < candidate_right)} for i in range(n)]
    feedback += [{"request_id": f"stable-{i}", "label": int(i < baseline_right)} for i in range(n)]
    monitoring.record_feedback(feedback, actor=editor)


def canary_rollout(editor: Any, **settings: Any) -> Rollout:
    model = registry.create_registered_model("clf", owner=editor)
    add_version(model, editor, GOOD)
    add_version(model, editor, GOOD)
    deployment = services.create_deployment(
        "clf-prod", model, "1", owner=editor, strategy=Strategy.CANARY, canary_steps=[10, 100], bake_seconds=30,
        min_canary_requests=10, champion_margin=0.05, **settings,
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    return services.deploy(deployment, 2, actor=editor)


def test_a_candidate_less_accurate_than_the_baseline_is_rolled_back(editor: Any, store: Any) -> None:
    rollout = canary_rollout(editor)
    labelled_traffic(rollout, editor, candidate_right=10, baseline_right=19)
    assert runner.execute(rollout.job_id) == "failed"
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.ROLLED_BACK
    assert "live accuracy 50.0% over 20 labels is below the baseline's 95.0%" in rollout.reason
    assert rollout.health["accuracy"]["candidate_accuracy"] == 0.5


def test_too_few_labels_do_not_judge_and_a_good_candidate_passes(editor: Any, store: Any) -> None:
    rollout = services.shift_traffic(canary_rollout(editor), 0)
    labelled_traffic(rollout, editor, candidate_right=2, baseline_right=5, n=5)
    measured, verdict = canary.canary_accuracy(rollout)
    assert verdict is None and measured["candidate_labelled"] == 5
    Rollout.objects.filter(pk=rollout.pk).update(step_started=timezone.now() - timedelta(minutes=5))
    PredictionLog.objects.all().delete()
    labelled_traffic(Rollout.objects.get(pk=rollout.pk), editor, candidate_right=19, baseline_right=19)
    assert canary.canary_accuracy(Rollout.objects.get(pk=rollout.pk))[1] is None


def test_min_accuracy_applies_to_live_traffic_too(editor: Any, store: Any) -> None:
    from deployments.models import Deployment

    rollout = services.shift_traffic(canary_rollout(editor), 0)
    Deployment.objects.filter(pk=rollout.deployment_id).update(min_accuracy=0.9)  # the holdout gate's threshold
    rollout = Rollout.objects.select_related("deployment").get(pk=rollout.pk)
    labelled_traffic(rollout, editor, candidate_right=15, baseline_right=15)
    assert "below 90.0%" in (canary.canary_accuracy(rollout)[1] or "")
