"""Fill the per-minute rollups from the prediction log and the feedback that joins it.

`fill_rollups()` runs on beat (`monitoring.rollup`). Under a lock on the cursor row it reads the
prediction log past the cursor (at most ROLLUP_BATCH_ROWS rows), adds the minutes those rows fall in (and
the two before them, for rows a slower model server committed late) and the minutes marked dirty by late
feedback, recomputes each of those minutes from the raw rows, replaces their rollup rows, and moves the
cursor, all in one transaction. A fill that crashes leaves the cursor where it was, and recomputing a
minute from raw rows is idempotent, so the next fill simply does the work again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from deployments.models import PredictionLog
from monitoring.models import BUCKET_FIELDS, LATENCY_BOUNDS_MS, DirtyMinute, Feedback, MinuteRollup, RollupCursor

CURSOR = "predictions"
STRAGGLER_MINUTES = 2
MINUTE = timedelta(minutes=1)


@dataclass
class FillReport:
    rows: int = 0
    minutes: int = 0
    cursor: int = 0


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def epoch_minute(minute: datetime) -> int:
    return int(minute.timestamp() // 60)


def error_filter() -> Q:
    """Answers the model is to blame for: a 5xx, or a prediction that raised."""
    return PredictionLog.model_errors()


def client_error_filter() -> Q:
    return Q(status__gte=400, status__lt=500) & ~Q(error="model_error")


def bucket_filters() -> dict[str, Q]:
    filters = {}
    lower = None
    for name, upper in zip(BUCKET_FIELDS, [*LATENCY_BOUNDS_MS, None], strict=True):
        condition = Q()
        if lower is not None:
            condition &= Q(latency_ms__gt=lower)
        if upper is not None:
            condition &= Q(latency_ms__lte=upper)
        filters[name] = condition
        lower = upper
    return filters


def fill_rollups(max_rows: int | None = None) -> FillReport:
    max_rows = max_rows or settings.ROLLUP_BATCH_ROWS
    RollupCursor.objects.get_or_create(name=CURSOR)
    with transaction.atomic():
        cursor = RollupCursor.objects.select_for_update().get(name=CURSOR)
        new = list(
            PredictionLog.objects.filter(pk__gt=cursor.last_id)
            .order_by("pk")
            .values_list("pk", "deployment_id", "time")[:max_rows]
        )
        # Several writers commit out of id order: stop at the first row younger than the settle time, so
        # the cursor never passes ids whose rows (written at about the same time) may not be committed yet.
        settled = timezone.now() - timedelta(seconds=settings.ROLLUP_SETTLE_SECONDS)
        cut = next((i for i, (_, _, moment) in enumerate(new) if moment > settled), len(new))
        new = new[:cut]
        touched: dict[int, set[datetime]] = defaultdict(set)
        for _, deployment_id, moment in new:
            minute = minute_of(moment)
            for back in range(STRAGGLER_MINUTES + 1):
                touched[deployment_id].add(minute - back * MINUTE)
        dirty = list(DirtyMinute.objects.values_list("pk", "deployment_id", "minute")[:10_000])
        # Deleted before recomputing: feedback committing meanwhile re-marks its minute (its insert waits
        # for this delete) instead of colliding with a row about to go.
        DirtyMinute.objects.filter(pk__in=[pk for pk, _, _ in dirty]).delete()
        for _, deployment_id, minute in dirty:
            touched[deployment_id].add(minute_of(minute))
        if settings.PREDICTION_LOG_RETENTION_DAYS:
            # Raw rows of minutes near the retention cutoff may be gone: never rebuild those from a remnant.
            oldest = timezone.now() - timedelta(days=settings.PREDICTION_LOG_RETENTION_DAYS) + timedelta(hours=1)
            touched = defaultdict(set, {d: {m for m in ms if m >= oldest} for d, ms in touched.items()})
        minutes = 0
        for deployment_id, wanted in touched.items():
            for start, end in _runs(sorted(wanted)):
                minutes += _recompute(deployment_id, start, end)
        if new:
            cursor.last_id = new[-1][0]
            cursor.save(update_fields=["last_id", "updated"])
    return FillReport(rows=len(new), minutes=minutes, cursor=cursor.last_id)


def _runs(minutes: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous stretches of minutes, as [start, end) ranges: one query each."""
    runs: list[tuple[datetime, datetime]] = []
    for minute in minutes:
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + MINUTE)
        else:
            runs.append((minute, minute + MINUTE))
    return runs


def _recompute(deployment_id: int, start: datetime, end: datetime) -> int:
    """Rebuild the rollup rows of [start, end) for one deployment from the raw log; returns minutes written."""
    logs = PredictionLog.objects.filter(deployment_id=deployment_id, time__gte=start, time__lt=end)
    groups = (
        logs.annotate(bucket_minute=TruncMinute("time"))
        .values("bucket_minute", "model_version", "arm")
        .annotate(
            n=Count("id"),
            n_errors=Count("id", filter=error_filter()),
            n_client_errors=Count("id", filter=client_error_filter()),
            latency_sum=Sum("latency_ms"),
            **{f"n_{name}": Count("id", filter=condition) for name, condition in bucket_filters().items()},
        )
        .order_by()
    )
    rows: dict[tuple[datetime, int, str], MinuteRollup] = {}
    for group in groups:
        minute = minute_of(group["bucket_minute"])
        rows[(minute, group["model_version"], group["arm"])] = MinuteRollup(
            deployment_id=deployment_id, model_version=group["model_version"], arm=group["arm"], minute=minute,
            epoch_minute=epoch_minute(minute), requests=group["n"], errors=group["n_errors"],
            client_errors=group["n_client_errors"], latency_sum_ms=group["latency_sum"] or 0.0,
            **{name: group[f"n_{name}"] for name in BUCKET_FIELDS},
        )  # fmt: skip
    _add_accuracy(logs, rows, deployment_id)
    MinuteRollup.objects.filter(deployment_id=deployment_id, minute__gte=start, minute__lt=end).delete()
    MinuteRollup.objects.bulk_create(rows.values(), batch_size=1000)
    return len({minute for minute, _, _ in rows})


def _add_accuracy(logs: Any, rows: dict[tuple[datetime, int, str], MinuteRollup], deployment_id: int) -> None:
    labelled = list(
        logs.filter(request_id__in=Feedback.objects.values("request_id"), status=200).values_list(
            "time", "model_version", "arm", "request_id", "outputs"
        )
    )
    if not labelled:
        return
    truth = trusted_truth(logs.values("request_id"), deployment_id)
    for moment, version, arm, request_id, outputs in labelled:
        row = rows.get((minute_of(moment), version, arm))
        if row is None or outputs is None or request_id not in truth:
            continue
        labels, is_value = truth[request_id]
        for predicted, actual in pairs(outputs, labels):
            if is_value:
                error = regression_error(predicted, actual)
                if error is not None:
                    row.valued += 1
                    row.abs_error_sum += abs(error)
                    row.sq_error_sum += error * error
            else:
                verdict = is_correct(predicted, actual)
                if verdict is not None:
                    row.labelled += 1
                    row.correct += int(verdict)


def trusted_truth(request_ids: Any, deployment_id: int) -> dict[str, tuple[Any, bool]]:
    """The feedback (label or value, is_value) for `request_ids` that counts for this deployment.

    Feedback for a request not yet logged could not be checked when it came: it counts only if its
    submitter may label this deployment's predictions (EDIT on its model), checked here, once per user."""
    found = list(
        Feedback.objects.filter(request_id__in=request_ids).values_list(
            "request_id", "label", "is_value", "submitted_by_id"
        )
    )
    trusted = _may_label(deployment_id, {row[3] for row in found if row[3] is not None})
    return {rid: (label, is_value) for rid, label, is_value, user_id in found if user_id in trusted}


def _may_label(deployment_id: int, user_ids: set[int]) -> set[int]:
    from django.contrib.auth import get_user_model

    from deployments.models import Deployment
    from experiments.models import Permission
    from registry.permissions import can

    deployment = Deployment.objects.select_related("registered_model").filter(pk=deployment_id).first()
    if deployment is None or not user_ids:
        return set()
    users = get_user_model().objects.filter(pk__in=user_ids)
    return {user.pk for user in users if can(user, deployment.registered_model, Permission.EDIT)}


def pairs(outputs: Any, labels: Any) -> list[tuple[Any, Any]]:
    """(prediction, truth) per row: a list of labels is one per row, a single label is the first row's."""
    predictions = prediction_rows(outputs)
    return list(zip(predictions, labels, strict=False)) if isinstance(labels, list) else [(predictions[0], labels)]


def prediction_rows(outputs: Any) -> list[Any]:
    """One prediction per input row, whatever the protocol returned (named outputs: the first)."""
    if isinstance(outputs, dict):
        outputs = next(iter(outputs.values()), [])
    return outputs if isinstance(outputs, list) and outputs else [outputs]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def is_correct(predicted: Any, label: Any) -> bool | None:
    """Whether a classifier's output names the label: argmax of class scores, a 0.5 threshold on one
    probability against 0/1 labels, or equality. None when they cannot be compared."""
    if isinstance(label, bool):
        label = int(label)  # true/false labels are classes 1 and 0
    if isinstance(predicted, list):
        scores = [_number(v) for v in predicted]
        if len(scores) > 1 and all(s is not None for s in scores):
            wanted = _number(label)
            if wanted is None:
                return None  # class scores against a text label: not comparable
            return scores.index(max(scores)) == wanted  # type: ignore[type-var]
        predicted = predicted[0] if len(predicted) == 1 else None
    number, wanted = _number(predicted), _number(label)
    if number is not None and wanted is not None:
        if wanted in (0.0, 1.0) and 0.0 <= number <= 1.0 and number not in (0.0, 1.0):
            return (number >= 0.5) == (wanted == 1.0)
        return number == wanted
    if predicted is None or label is None:
        return None
    return str(predicted) == str(label)


def regression_error(predicted: Any, value: Any) -> float | None:
    if isinstance(predicted, list):
        predicted = predicted[0] if len(predicted) == 1 else None
    number, wanted = _number(predicted), _number(value)
    return None if number is None or wanted is None else number - wanted
