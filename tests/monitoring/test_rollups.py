"""Per-minute rollups from the prediction log: counts, errors, latency buckets and percentiles, accuracy
and regression errors from feedback, a cursor that resumes, and minutes recomputed for late labels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitoring import rollups, services
from monitoring.models import LATENCY_BOUNDS_MS, MinuteRollup, RollupCursor
from tests.monitoring.conftest import T0


def rollup_of(minute: Any, version: int = 1, arm: str = "stable") -> MinuteRollup:
    return MinuteRollup.objects.get(minute=minute, model_version=version, arm=arm)


def test_a_fill_counts_requests_errors_and_latency_buckets_per_minute_version_and_arm(
    predict: Any, deployment: Any
) -> None:
    for i, latency in enumerate((0.4, 1.5, 1.5, 8.0, 30.0)):
        predict(T0 + timedelta(seconds=i), latency_ms=latency)
    predict(T0 + timedelta(seconds=10), status=500, latency_ms=3.0)
    predict(T0 + timedelta(seconds=11), status=400, error="bad_input", latency_ms=0.3)
    predict(T0 + timedelta(seconds=12), status=400, error="model_error", latency_ms=0.3)
    predict(T0 + timedelta(minutes=1), latency_ms=2.0, version=2, arm="canary")
    report = rollups.fill_rollups()
    assert report.rows == 9 and RollupCursor.objects.get().last_id == report.cursor
    first = rollup_of(T0)
    assert (first.requests, first.errors, first.client_errors) == (8, 2, 1)
    assert first.latency_sum_ms == sum((0.4, 1.5, 1.5, 8.0, 30.0, 3.0, 0.3, 0.3))
    buckets = {LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else "inf": getattr(first, f"b{i:02d}")
               for i in range(len(LATENCY_BOUNDS_MS) + 1)}  # fmt: skip
    assert {k: v for k, v in buckets.items() if v} == {0.5: 3, 2: 2, 3: 1, 10: 1, 50: 1}
    canary = rollup_of(T0 + timedelta(minutes=1), version=2, arm="canary")
    assert (canary.requests, canary.epoch_minute) == (1, rollups.epoch_minute(T0) + 1)


def test_the_cursor_resumes_and_a_refill_changes_nothing(predict: Any) -> None:
    predict(T0)
    rollups.fill_rollups()
    predict(T0 + timedelta(seconds=5))
    assert rollups.fill_rollups().rows == 1
    assert rollups.fill_rollups().rows == 0
    assert rollup_of(T0).requests == 2 and MinuteRollup.objects.count() == 1


def test_a_batch_limit_fills_in_several_passes(predict: Any) -> None:
    for i in range(7):
        predict(T0 + timedelta(seconds=i))
    assert [rollups.fill_rollups(max_rows=3).rows for _ in range(4)] == [3, 3, 1, 0]
    assert rollup_of(T0).requests == 7


def test_labels_arriving_later_recompute_their_minute(predict: Any, editor: Any) -> None:
    predict(T0, request_id="p1", outputs=[[0.9]])  # predicts 1
    predict(T0 + timedelta(seconds=1), request_id="p2", outputs=[[0.2]])  # predicts 0
    predict(T0 + timedelta(seconds=2), request_id="p3", outputs=[[0.1, 0.7, 0.2]])  # class 1
    rollups.fill_rollups()
    assert rollup_of(T0).labelled == 0
    services.record_feedback(
        [{"request_id": "p1", "label": 1}, {"request_id": "p2", "label": 1}, {"request_id": "p3", "label": 1}],
        actor=editor,
    )
    rollups.fill_rollups()
    row = rollup_of(T0)
    assert (row.labelled, row.correct) == (3, 2)
    services.record_feedback([{"request_id": "p2", "label": 0}], actor=editor)  # a correction
    rollups.fill_rollups()
    assert rollup_of(T0).correct == 3


def test_feedback_before_its_prediction_joins_when_the_prediction_arrives(predict: Any, editor: Any) -> None:
    assert services.record_feedback([{"request_id": "early", "label": 1}], actor=editor).pending == 1
    predict(T0, request_id="early", outputs=[[0.8]])
    rollups.fill_rollups()
    assert (rollup_of(T0).labelled, rollup_of(T0).correct) == (1, 1)


def test_regression_values_give_mae_and_rmse_and_multi_row_labels_count_per_row(predict: Any, editor: Any) -> None:
    predict(T0, request_id="r1", outputs=[[10.0], [20.0]], rows=2)
    services.record_feedback([{"request_id": "r1", "value": [12.0, 19.0]}], actor=editor)
    rollups.fill_rollups()
    row = rollup_of(T0)
    assert (row.valued, row.abs_error_sum, row.sq_error_sum) == (2, 3.0, 5.0)


def test_comparisons_cover_the_shapes_models_answer_with() -> None:
    assert rollups.is_correct([0.2, 0.8], 1) is True
    assert rollups.is_correct([0.7], 0) is False
    assert rollups.is_correct(0.3, 0) is True
    assert rollups.is_correct(2, 2) is True
    assert rollups.is_correct("cat", "cat") is True
    assert rollups.is_correct(None, 1) is None
    assert rollups.regression_error([2.5], 2.0) == 0.5
    assert rollups.prediction_rows({"scores": [[1.0], [0.0]]}) == [[1.0], [0.0]]


def test_early_feedback_from_someone_who_may_not_label_the_deployment_does_not_count(
    predict: Any, django_user_model: Any, settings: Any
) -> None:
    from tests.conftest import make_user

    settings.TRACKING_DEFAULT_PERMISSION = "READ"
    outsider = make_user(django_user_model, "otto", "editor")
    services.record_feedback([{"request_id": "early", "label": 0}], actor=outsider)  # not logged yet: accepted
    predict(T0, request_id="early", outputs=[[0.8]])
    rollups.fill_rollups()
    assert rollup_of(T0).labelled == 0


def test_boolean_labels_are_classes_one_and_zero() -> None:
    assert rollups.is_correct([0.9], True) is True
    assert rollups.is_correct([0.9], False) is False


def test_rows_younger_than_the_settle_time_wait_for_the_next_fill(predict: Any, settings: Any) -> None:
    from django.utils import timezone

    settings.ROLLUP_SETTLE_SECONDS = 60
    predict(timezone.now() - timedelta(minutes=5), request_id="old")
    predict(timezone.now(), request_id="young")
    assert rollups.fill_rollups().rows == 1
    settings.ROLLUP_SETTLE_SECONDS = 0
    assert rollups.fill_rollups().rows == 1
