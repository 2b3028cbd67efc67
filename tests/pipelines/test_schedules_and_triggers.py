"""Schedules run by beat without a pile-up of missed runs; triggers fire on a new dataset version and on an
alert, with a cooldown so a storm of alerts starts one run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from mlops_portal.events import publish
from pipelines import services
from pipelines.models import PipelineRun, Schedule
from pipelines.spec import SpecError
from tests.datasets.factories import push

SPEC = {"params": {"version": 0}, "steps": [
    {"name": "a", "type": "function", "args": {"function": "tests.pipelines.functions.record",
                                               "kwargs": {"version": "{{ params.version }}"}}},
]}  # fmt: skip


def open_alert(editor: Any, deployment: str) -> None:
    """What monitoring does when a rule fires: an Alert row, then the `alert.opened` event."""
    from deployments.models import Deployment
    from monitoring.models import Alert, AlertRule
    from registry import services as registry
    from registry.models import RegisteredModel

    target = Deployment.objects.filter(name=deployment).first()
    if target is None:
        model = RegisteredModel.objects.first() or registry.create_registered_model("churn", owner=editor)
        target = Deployment.objects.create(name=deployment, registered_model=model, selector="1", owner=editor)
    rule = AlertRule.objects.create(deployment=target, name=f"drift {AlertRule.objects.count()}", metric="error_rate",
                                    threshold=0.1, owner=editor)  # fmt: skip
    alert = Alert.objects.create(rule=rule, deployment=target, severity="warning", value=0.4, last_value=0.4,
                                 message="drift", opened_at=timezone.now())  # fmt: skip
    publish("alert.opened", alert_id=alert.pk, rule_id=rule.pk, deployment_id=target.pk, severity="warning")


@pytest.fixture
def pipeline(editor: Any) -> Any:
    return services.save_definition("loop", SPEC, actor=editor)[0].pipeline


def test_cron_expressions_and_presets_give_the_next_time(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    at = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    assert services.next_time("@hourly", at) == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    assert services.next_time("@daily", at) == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert services.next_time("@weekly", at) == datetime(2026, 12, 13, 0, 0, tzinfo=UTC)  # Sunday
    assert services.next_time("*/20 * * * *", at) == datetime(2026, 12, 6, 10, 40, tzinfo=UTC)
    for bad in ("every day", "* * *", "61 * * * *", "@sometimes"):
        with pytest.raises(SpecError):
            services.cron_expression(bad)


def test_a_schedule_that_missed_its_times_runs_once_not_once_per_miss(
    pipeline: Any, editor: Any, sent: list[int]
) -> None:
    schedule = services.create_schedule(pipeline, "@hourly", params={"version": 3}, actor=editor)
    assert schedule.next_run_at > timezone.now()
    assert services.run_due_schedules() == []
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(hours=5, minutes=1))
    started = services.run_due_schedules()
    assert len(started) == 1
    run = PipelineRun.objects.get()
    assert (run.trigger, run.params, run.requested_by) == ("schedule", {"version": 3}, editor)
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now() and services.run_due_schedules() == []


def test_catchup_makes_up_every_missed_time_and_a_paused_schedule_waits(pipeline: Any, editor: Any, sent: Any) -> None:
    schedule = services.create_schedule(pipeline, "@hourly", catchup=True, actor=editor)
    # An hourly time three hours back: it and the three hours since are due, whatever the minute now
    # (3 h 1 min back from now was five times in a run's first minute past the hour).
    now = timezone.now()
    top_of_hour = now.replace(minute=0, second=0, microsecond=0)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=top_of_hour - timedelta(hours=3))
    assert len(services.run_due_schedules(now)) == 4
    services.set_schedule_paused(schedule, True, actor=editor)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(hours=1))
    assert services.run_due_schedules() == []
    resumed = services.set_schedule_paused(schedule, False, actor=editor)
    assert resumed.next_run_at > timezone.now()  # the paused stretch is not made up for


def test_a_new_dataset_version_starts_the_pipeline_with_the_version_in_its_params(
    pipeline: Any, editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    services.create_trigger(pipeline, "dataset", "iris", params={"version": "{{ event.version }}"},
                            cooldown_seconds=0, actor=editor)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        push("iris", author=editor)
        push("other", author=editor)
    run = PipelineRun.objects.get()
    assert (run.trigger, run.params) == ("dataset", {"version": 1})
    assert run.trigger_details["event"] == {"dataset": "iris", "version": 1}
    with pytest.raises(SpecError):
        services.create_trigger(pipeline, "dataset", "iris", params={"nope": 1}, actor=editor)


def test_an_alert_storm_starts_one_run_per_cooldown(pipeline: Any, editor: Any, sent: list[int],
                                                     django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    trigger = services.create_trigger(pipeline, "alert", "churn-api", cooldown_seconds=3600, actor=editor)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            open_alert(editor, deployment="churn-api")
    assert PipelineRun.objects.filter(trigger="alert").count() == 1
    run = PipelineRun.objects.get()
    assert run.trigger_details["event"]["deployment"] == "churn-api"
    trigger.refresh_from_db()
    trigger.last_fired_at -= timedelta(hours=2)
    trigger.save()
    with django_capture_on_commit_callbacks(execute=True):
        open_alert(editor, deployment="churn-api")
    assert PipelineRun.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        publish("alert.opened", alert_id=999_999, rule_id=1, deployment_id=1, severity="x")  # gone: ignored
    assert PipelineRun.objects.count() == 2
