"""The write path of pipelines: definitions and their versions, webhook tokens, schedules and triggers.

Runs are started, advanced, cancelled and re-run in pipelines/engine.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.services import record_audit
from pipelines import engine
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, Schedule, Trigger, TriggerKind
from pipelines.spec import SpecError, digest, validate

logger = logging.getLogger(__name__)
PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
WEBHOOK_PREFIX = "plw_"


class NotOwner(PermissionError):
    pass


def may_change(user: Any, pipeline: Pipeline) -> bool:
    """The owner and admins change a pipeline (definition, schedules, triggers, token); editors run it."""
    from accounts.services import has_role

    return pipeline.owner_id == getattr(user, "pk", None) or has_role(user, "admin")


def save_definition(name: str, spec: Any, *, actor: Any, description: str = "") -> tuple[PipelineVersion, bool]:
    """Create the pipeline, or add a version when the definition changed (the owner or an admin: NotOwner
    otherwise, decided under the pipeline's lock). Returns (version, created)."""
    if not isinstance(name, str) or not PIPELINE_NAME.match(name):
        raise SpecError("name", "lowercase letters, digits, '-' and '_', starting with a letter, at most 100")
    clean = validate(spec)
    key = digest(clean)
    with transaction.atomic():
        pipeline, new = Pipeline.objects.select_for_update().get_or_create(
            name=name, defaults={"owner": actor if getattr(actor, "is_authenticated", False) else None}
        )
        if not new and not may_change(actor, pipeline):
            raise NotOwner(f"Only the owner of {name!r} or an admin may change it.")
        if description or clean.get("description"):
            Pipeline.objects.filter(pk=pipeline.pk).update(description=description or clean["description"])
        latest = pipeline.latest_version()
        if latest is not None and latest.digest == key:
            return latest, False
        number = (pipeline.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = PipelineVersion.objects.create(
            pipeline=pipeline, number=number, spec=clean, digest=key,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )  # fmt: skip
        record_audit(actor, "pipeline.define", version, {"version": number})
    return version, True


def issue_webhook_token(pipeline: Pipeline, *, actor: Any) -> str:
    """A new token for `POST /api/v1/pipelines/<name>/webhook/`; the old one stops working. Shown once."""
    secret = WEBHOOK_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        Pipeline.objects.filter(pk=pipeline.pk).update(webhook_token_digest=hashlib.sha256(secret.encode()).hexdigest())
        record_audit(actor, "pipeline.webhook_token", pipeline, {})
    return secret


def pipeline_for_webhook(name: str, token: str) -> Pipeline | None:
    pipeline = Pipeline.objects.filter(name=name).exclude(webhook_token_digest="").first()
    if pipeline is None or not token:
        return None
    given = hashlib.sha256(token.encode()).hexdigest()
    return pipeline if secrets.compare_digest(given, pipeline.webhook_token_digest) else None


# Schedules --------------------------------------------------------------------------------------


def cron_expression(text: str) -> str:
    expression = PRESETS.get(text.strip().lower(), text.strip())
    if not croniter.is_valid(expression) or len(expression.split()) != 5:
        raise SpecError("cron", f"{text!r}: five cron fields (minute hour day month weekday) or {', '.join(PRESETS)}")
    return expression


def next_time(cron: str, after: datetime) -> datetime:
    zone = ZoneInfo(settings.TIME_ZONE)
    return croniter(cron_expression(cron), after.astimezone(zone)).get_next(datetime).astimezone(ZoneInfo("UTC"))


def _check_params(pipeline: Pipeline, params: Any, undefined: str) -> None:
    """The params a schedule or trigger will start runs with, checked against the newest definition."""
    version = pipeline.latest_version()
    if version is None:
        raise SpecError("pipeline", undefined)
    try:
        engine.run_params(version, params)
    except engine.RunError as exc:
        raise SpecError(exc.field, exc.message) from None


def create_schedule(pipeline: Pipeline, cron: str, *, params: Any = None, catchup: bool = False,
                    actor: Any) -> Schedule:  # fmt: skip
    cron_expression(cron)
    _check_params(pipeline, params, "define the pipeline before scheduling it")
    with transaction.atomic():
        schedule = Schedule.objects.create(
            pipeline=pipeline, cron=cron.strip(), params=params or {}, catchup=catchup,
            next_run_at=next_time(cron, timezone.now()), created_by=actor,
        )  # fmt: skip
        record_audit(actor, "pipeline.schedule", schedule, {"cron": schedule.cron})
    return schedule


def set_schedule_paused(schedule: Schedule, paused: bool, *, actor: Any) -> Schedule:
    with transaction.atomic():
        values: dict[str, Any] = {"paused": paused}
        if not paused:  # resuming starts from now: the paused stretch is not made up for
            values["next_run_at"] = next_time(schedule.cron, timezone.now())
        Schedule.objects.filter(pk=schedule.pk).update(**values)
        record_audit(actor, "pipeline.schedule_pause" if paused else "pipeline.schedule_resume", schedule, {})
    schedule.refresh_from_db()
    return schedule


def run_due_schedules(now: datetime | None = None) -> list[int]:
    """On beat: start a run for every schedule whose time came. Without `catchup`, a schedule that missed
    several times (beat was down) starts one run and moves to its next time after now; with it, one run per
    missed time, oldest first, at most 100 per tick."""
    now = now or timezone.now()
    started: list[int] = []
    due = Schedule.objects.filter(paused=False, next_run_at__lte=now).values_list("pk", flat=True)
    for schedule_id in list(due[:200]):
        try:
            started += _run_schedule(schedule_id, now)
        except Exception:  # one schedule's trouble must not stop the others, nor the runs on the same tick
            logger.exception("a pipeline schedule failed", extra={"schedule_id": schedule_id})
            Schedule.objects.filter(pk=schedule_id).update(next_run_at=now + timedelta(minutes=5))
    return started


def _run_schedule(schedule_id: int, now: datetime) -> list[int]:
    started: list[int] = []
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update(skip_locked=True).select_related("pipeline")
        schedule = schedule.filter(pk=schedule_id, paused=False, next_run_at__lte=now).first()
        if schedule is None:
            return started  # another beat took it
        times = [schedule.next_run_at]
        if schedule.catchup:
            while len(times) < 100 and (following := next_time(schedule.cron, times[-1])) <= now:
                times.append(following)
        for when in times:
            try:
                run = engine.start_run(
                    schedule.pipeline, params=schedule.params, trigger=TriggerKind.SCHEDULE,
                    details={"schedule": schedule.pk, "cron": schedule.cron, "for": when.isoformat()},
                    requested_by=schedule.created_by,
                )  # fmt: skip
            except engine.RunError:
                break  # the definition changed under the schedule's params: the run page says nothing ran
            started.append(run.pk)
        schedule.last_run_at = times[-1]
        schedule.next_run_at = next_time(schedule.cron, max(now, times[-1]))
        schedule.save(update_fields=["last_run_at", "next_run_at"])
    return started


# Triggers ---------------------------------------------------------------------------------------


def create_trigger(pipeline: Pipeline, kind: str, source: str, *, params: Any = None, cooldown_seconds: int = 3600,
                   actor: Any) -> Trigger:  # fmt: skip
    if kind not in (TriggerKind.DATASET, TriggerKind.ALERT):
        raise SpecError("kind", "dataset or alert")
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise SpecError("source", "the dataset's or the deployment's name")
    if not isinstance(params, dict | None):
        raise SpecError("params", "an object of parameter values (templates like {{ event.version }} allowed)")
    _check_params(pipeline, params, "define the pipeline before adding triggers")
    if not isinstance(cooldown_seconds, int) or not 0 <= cooldown_seconds <= 30 * 86400:
        raise SpecError("cooldown_seconds", "from 0 to 2592000")
    with transaction.atomic():
        trigger = Trigger.objects.create(pipeline=pipeline, kind=kind, source=source.strip(), params=params or {},
                                         cooldown_seconds=cooldown_seconds, created_by=actor)  # fmt: skip
        record_audit(actor, "pipeline.trigger", trigger, {"kind": kind, "source": trigger.source})
    return trigger


def fire_triggers(kind: str, source: str, event: dict[str, Any]) -> list[int]:
    """Start the runs of the enabled triggers on `source`, each at most once per its cooldown (a storm of
    alerts starts one retrain). Returns the runs started."""
    from pipelines.spec import render

    started: list[int] = []
    now = timezone.now()
    ids = Trigger.objects.filter(kind=kind, source=source, enabled=True).values_list("pk", flat=True)
    for trigger_id in list(ids):
        with transaction.atomic():
            trigger = Trigger.objects.select_for_update().select_related("pipeline").filter(pk=trigger_id).first()
            if trigger is None:
                continue
            if trigger.last_fired_at and trigger.last_fired_at + timedelta(seconds=trigger.cooldown_seconds) > now:
                continue  # cooling down: this event is part of the storm that already started a run
            try:
                params = render(trigger.params, {"event": event})
                run = engine.start_run(trigger.pipeline, params=params, trigger=kind,
                                       details={"trigger": trigger.pk, "event": event},
                                       requested_by=trigger.created_by)  # fmt: skip
            except (SpecError, engine.RunError):
                continue
            trigger.last_fired_at = now
            trigger.save(update_fields=["last_fired_at"])
            started.append(run.pk)
    return started


def on_alert_opened(alert_id: int, **_: Any) -> None:
    from monitoring.models import Alert

    alert = Alert.objects.select_related("rule", "deployment").filter(pk=alert_id).first()
    if alert is None:
        return
    event = {"alert": alert.pk, "deployment": alert.deployment.name, "metric": alert.rule.metric,
             "value": alert.value, "severity": alert.severity}  # fmt: skip
    fire_triggers(TriggerKind.ALERT, alert.deployment.name, event)


def on_dataset_version(version_id: int, **_: Any) -> None:
    from datasets.models import DatasetVersion

    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is not None:
        event = {"dataset": version.dataset.name, "version": version.number}
        fire_triggers(TriggerKind.DATASET, version.dataset.name, event)


def last_runs(pipelines: list[Pipeline]) -> dict[int, PipelineRun]:
    """Each pipeline's newest run, in one query."""
    newest = PipelineRun.objects.filter(pipeline__in=pipelines).values("pipeline").annotate(top=Max("number"))
    condition = Q()
    for row in newest:
        condition |= Q(pipeline_id=row["pipeline"], number=row["top"])
    if not newest:
        return {}
    return {r.pipeline_id: r for r in PipelineRun.objects.filter(condition)}
