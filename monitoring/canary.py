"""Accuracy in a canary's live judgment: the candidate's labelled predictions since its step began,
against the baseline's over the same time (registered with `deployments.hooks`).

The candidate is rolled back when, with at least `min_canary_requests` labels on each side, its accuracy
falls below the baseline's minus `champion_margin`, or below `min_accuracy` when one is set (the holdout
gate's threshold, now applied to live traffic). Labels arrive late: until there are enough, accuracy does
not judge, and error rate and latency decide alone.
"""

from __future__ import annotations

from typing import Any

from deployments.hooks import register_canary_check
from deployments.models import PredictionLog, Rollout
from monitoring.models import Feedback
from monitoring.rollups import is_correct, pairs, trusted_truth

MAX_ROWS = 20_000


def accuracy_since(revision_id: int, deployment_id: int, since: Any) -> tuple[int, int]:
    """(labelled, correct) predictions of a revision since `since`, with the rollups' rules for what counts."""
    logs = PredictionLog.objects.filter(revision_id=revision_id, time__gte=since, status=200).exclude(outputs=None)
    # Only predictions with feedback, chosen in SQL: a bake tick must not read every unlabelled output.
    labelled = logs.filter(request_id__in=Feedback.objects.values("request_id"))
    rows = list(labelled.order_by("-time").values_list("request_id", "outputs")[:MAX_ROWS])
    truth = trusted_truth([r for r, _ in rows], deployment_id)
    seen = correct = 0
    for request_id, outputs in rows:
        if request_id not in truth or truth[request_id][1]:  # no label, or a regression value
            continue
        for predicted, label in pairs(outputs, truth[request_id][0]):
            verdict = is_correct(predicted, label)
            if verdict is not None:
                seen += 1
                correct += int(verdict)
    return seen, correct


def canary_accuracy(rollout: Rollout) -> tuple[dict[str, Any], str | None]:
    deployment = rollout.deployment
    since = rollout.step_started or rollout.created
    labelled, correct = accuracy_since(rollout.revision_id, deployment.pk, since)
    measured: dict[str, Any] = {"candidate_labelled": labelled,
                                "candidate_accuracy": round(correct / labelled, 4) if labelled else None}  # fmt: skip
    base_labelled = base_correct = 0
    if rollout.baseline_id is not None:
        base_labelled, base_correct = accuracy_since(rollout.baseline_id, deployment.pk, since)
        measured["baseline_labelled"] = base_labelled
        measured["baseline_accuracy"] = round(base_correct / base_labelled, 4) if base_labelled else None
    enough = deployment.min_canary_requests
    if labelled < enough:
        return measured, None
    accuracy = correct / labelled
    if deployment.min_accuracy is not None and accuracy < deployment.min_accuracy:
        return measured, f"live accuracy {accuracy:.1%} over {labelled} labels is below {deployment.min_accuracy:.1%}"
    if base_labelled >= enough:
        floor = base_correct / base_labelled - deployment.champion_margin
        if accuracy < floor:
            return measured, (
                f"live accuracy {accuracy:.1%} over {labelled} labels is below the baseline's "
                f"{base_correct / base_labelled:.1%} minus the margin of {deployment.champion_margin:g}"
            )
    return measured, None


def register() -> None:
    register_canary_check("accuracy", canary_accuracy)
