"""Retention: old prediction log rows go once the rollups have read them; old rollups and feedback go."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from deployments.models import PredictionLog
from monitoring import retention, rollups, services
from monitoring.models import Feedback, MinuteRollup


def test_old_rows_are_pruned_but_never_before_the_rollups_read_them(predict: Any, editor: Any, settings: Any) -> None:
    now = timezone.now()
    old = predict(now - timedelta(days=40), request_id="old")
    predict(now - timedelta(days=1), request_id="recent")
    services.record_feedback([{"request_id": "old", "label": 1}], actor=editor)
    Feedback.objects.update(received=now - timedelta(days=40))
    first = retention.prune(now)
    assert (first.deleted["predictions"], first.deleted["feedback"]) == (0, 1)  # not rolled up yet: kept
    rollups.fill_rollups()
    assert retention.prune(now).deleted["predictions"] == 1
    assert list(PredictionLog.objects.values_list("request_id", flat=True)) == ["recent"]
    assert not PredictionLog.objects.filter(pk=old.pk).exists()
    assert MinuteRollup.objects.count() == 1  # the row past retention was not rolled up from a remnant
    old_minute = (now - timedelta(days=40)).replace(second=0, microsecond=0)
    MinuteRollup.objects.create(deployment=old.deployment, model_version=1, arm="stable", minute=old_minute,
                                epoch_minute=rollups.epoch_minute(old_minute), requests=1)  # fmt: skip
    settings.ROLLUP_RETENTION_DAYS = 30
    assert retention.prune(now).deleted["rollups"] == 1
    assert MinuteRollup.objects.count() == 1


def test_zero_keeps_everything(predict: Any, settings: Any) -> None:
    settings.PREDICTION_LOG_RETENTION_DAYS = 0
    settings.ROLLUP_RETENTION_DAYS = 0
    predict(timezone.now() - timedelta(days=4000))
    rollups.fill_rollups()
    assert retention.prune().deleted == {}
    assert PredictionLog.objects.count() == 1
