"""Alert rules evaluated on beat, alerts that open, get acknowledged and resolve, and their notifications.

Every ALERT_EVAL_SECONDS `evaluate_rules()` computes each enabled rule's metric over its window (from the
rollups, or the latest drift window) and compares it with the threshold. A condition must hold for the
rule's `for_minutes` before an alert opens; while it keeps holding, the one unresolved alert of the rule is
updated (deduplicated), and when it stops holding the alert resolves by itself. Opening and resolving
publish `alert.opened` / `alert.resolved` events (pipelines subscribe) and queue notifications: in-app (the
alerts page), e-mail, and a webhook signed with the rule's secret and sent under the egress policy.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import operator
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from accounts.services import record_audit
from mlops_portal.events import publish
from monitoring import egress
from monitoring.models import (
    Alert,
    AlertMetric,
    AlertRule,
    AlertStatus,
    DriftResult,
    MinuteRollup,
)
from monitoring.queries import SUMMED, Slot, quantile
from monitoring.rollups import epoch_minute

logger = logging.getLogger(__name__)

COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class AlertError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def metric_value(rule: AlertRule, now: datetime) -> float | None:
    """The rule's metric over its window, or None when there is too little to judge."""
    if rule.metric in (AlertMetric.DRIFT, AlertMetric.PREDICTION_DRIFT):
        recent = DriftResult.objects.filter(
            deployment_id=rule.deployment_id, window_end__gte=now - timedelta(minutes=max(rule.window_minutes, 1) + 60)
        )
        if rule.metric == AlertMetric.PREDICTION_DRIFT:
            recent = recent.filter(feature="prediction")
        else:
            recent = recent.exclude(feature="prediction")
        latest = recent.aggregate(end=Max("window_end"))["end"]
        if latest is None:
            return None
        return recent.filter(window_end=latest).aggregate(psi=Max("psi"))["psi"]
    since = epoch_minute(now - timedelta(minutes=rule.window_minutes))
    window = Slot(now, MinuteRollup.objects.filter(deployment_id=rule.deployment_id, epoch_minute__gte=since).aggregate(
        **{name: Sum(name) for name in SUMMED}))  # fmt: skip
    if rule.metric == AlertMetric.REQUEST_RATE:
        return window.get("requests") / (rule.window_minutes * 60)
    if rule.metric == AlertMetric.ACCURACY:
        return window.accuracy if window.get("labelled") >= rule.min_requests else None
    if rule.metric == AlertMetric.MAE:
        return window.mae if window.get("valued") >= rule.min_requests else None
    if window.get("requests") < rule.min_requests:
        return None
    if rule.metric == AlertMetric.ERROR_RATE:
        return window.error_rate
    if rule.metric == AlertMetric.MEAN_LATENCY:
        return window.mean_latency
    return quantile(0.95 if rule.metric == AlertMetric.P95_LATENCY else 0.99, window.buckets)


def evaluate_rule(rule: AlertRule, now: datetime) -> str:
    """Evaluate one rule; returns what happened ("opened", "updated", "resolved", "pending", "ok", "n/a")."""
    value = metric_value(rule, now)
    breaching = value is not None and COMPARE[rule.comparator](value, rule.threshold)
    outcome = "n/a" if value is None else "ok"
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
        active = Alert.objects.filter(rule=rule).exclude(status=AlertStatus.RESOLVED).first()
        rule.last_value, rule.last_evaluated = value, now
        if breaching:
            assert value is not None
            rule.breaching_since = rule.breaching_since or now
            held = now - rule.breaching_since >= timedelta(minutes=rule.for_minutes)
            if active is not None:
                Alert.objects.filter(pk=active.pk).update(last_value=value)
                outcome = "updated"
            elif held:
                outcome = "opened" if _open(rule, value, now) else "updated"
            else:
                outcome = "pending"
        else:
            # No data is not recovery: an alert stays open until the metric is measured as fine again.
            if value is not None:
                rule.breaching_since = None
                if active is not None:
                    _resolve(active, now, actor=None)
                    outcome = "resolved"
        rule.save(update_fields=["last_value", "last_evaluated", "breaching_since"])
    return outcome


def _open(rule: AlertRule, value: float, now: datetime) -> bool:
    message = (
        f"{rule.deployment.name}: {rule.get_metric_display()} is {value:.4g}, {rule.get_comparator_display()} "
        f"{rule.threshold:g} (over {rule.window_minutes} min)"
    )
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule, deployment_id=rule.deployment_id, severity=rule.severity, value=value, last_value=value,
                message=message, opened_at=now,
            )  # fmt: skip
    except IntegrityError:  # another evaluator opened it meanwhile: one alert per rule
        return False
    publish(
        "alert.opened", alert_id=alert.pk, rule_id=rule.pk, deployment_id=rule.deployment_id, severity=rule.severity
    )
    _queue_notifications(alert, "opened")
    return True


def _resolve(alert: Alert, now: datetime, *, actor: Any) -> None:
    Alert.objects.filter(pk=alert.pk).update(
        status=AlertStatus.RESOLVED, resolved_at=now,
        resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
    )  # fmt: skip
    publish("alert.resolved", alert_id=alert.pk, rule_id=alert.rule_id, deployment_id=alert.deployment_id)
    _queue_notifications(alert, "resolved")


def evaluate_rules(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for rule in AlertRule.objects.filter(enabled=True).select_related("deployment"):
        try:
            outcome = evaluate_rule(rule, now)
        except AlertRule.DoesNotExist:  # deleted while the others were evaluated
            outcome = "deleted"
        except Exception:  # one rule's failure must not stop the others
            logger.exception("evaluating alert rule %s failed", rule.pk)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def acknowledge(alert: Alert, *, actor: Any) -> Alert:
    """Someone is on it: the alert stays until resolved, but stops looking unattended."""
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=actor
        )
        if not updated:
            raise AlertError(f"the alert is {Alert.objects.get(pk=alert.pk).status}, not open", "status")
        record_audit(actor, "alert.acknowledge", alert, {"rule": alert.rule_id})
    alert.refresh_from_db()
    return alert


def resolve_by_hand(alert: Alert, *, actor: Any) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == AlertStatus.RESOLVED:
            raise AlertError("the alert is already resolved", "status")
        _resolve(alert, timezone.now(), actor=actor)
        # A hand-resolved condition that still holds must hold a full for-duration again before re-opening.
        AlertRule.objects.filter(pk=alert.rule_id).update(breaching_since=None)
        record_audit(actor, "alert.resolve", alert, {"rule": alert.rule_id})
    alert.refresh_from_db()
    return alert


# Notifications -----------------------------------------------------------------------------------


def _queue_notifications(alert: Alert, event: str) -> None:
    """Send the notifications from a worker, after commit (the webhook may be slow and is retried)."""

    def send() -> None:
        from kombu.exceptions import OperationalError

        from monitoring.tasks import notify

        try:
            notify.apply_async(args=[alert.pk, event], retry=False)
        except OperationalError:  # the broker is away: the alert is on its page all the same
            logger.warning("could not queue the notifications of alert %s (%s)", alert.pk, event)

    transaction.on_commit(send)


def payload(alert: Alert, event: str) -> dict[str, Any]:
    rule = alert.rule
    return {
        "event": f"alert.{event}",
        "alert": {
            "id": alert.pk, "status": alert.status, "severity": alert.severity, "message": alert.message,
            "value": alert.value, "last_value": alert.last_value, "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
        "rule": {"id": rule.pk, "name": rule.name, "metric": rule.metric, "comparator": rule.comparator,
                 "threshold": rule.threshold, "window_minutes": rule.window_minutes},
        "deployment": alert.deployment.name,
        "url": f"{settings.SITE_URL}/monitoring/alerts/{alert.pk}/",
    }  # fmt: skip


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of `timestamp.body`, as `sha256=<hex>` (receivers recompute it to trust the payload)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookRetry(Exception):
    """A webhook answered 5xx or could not be reached: worth another try later."""


def notify(alert_id: int, event: str) -> list[dict[str, Any]]:
    """Send the e-mail and the webhook of one alert event; record each outcome on the alert."""
    alert = Alert.objects.select_related("rule", "deployment").filter(pk=alert_id).first()
    if alert is None:
        return []
    rule = alert.rule
    outcomes: list[dict[str, Any]] = []
    now = timezone.now().isoformat()
    if rule.notify_emails and not _already(alert, "email", event):
        subject = f"[{alert.severity}] {rule.name} {event}: {alert.deployment.name}"
        body = f"{alert.message}\n\n{payload(alert, event)['url']}\n"
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(rule.notify_emails))
        except Exception as exc:  # the mail server's trouble must not keep the webhook from going out
            logger.warning("alert %s: e-mail failed: %s", alert.pk, exc)
            outcomes.append({"channel": "email", "event": event, "status": "failed", "detail": str(exc)[:200],
                             "at": now})  # fmt: skip
        else:
            outcomes.append({"channel": "email", "event": event, "status": "sent", "at": now})
    if rule.webhook_url and not _already(alert, "webhook", event):
        body = json.dumps(payload(alert, event), sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mlops-portal-alerts",
            "X-Portal-Timestamp": stamp,
            "X-Portal-Signature": sign(rule.webhook_secret, stamp, body),
        }
        try:
            response = egress.post(rule.webhook_url, body, headers)
        except egress.EgressDenied as exc:
            outcomes.append({"channel": "webhook", "event": event, "status": "refused", "detail": str(exc), "at": now})
        except (OSError, http.client.HTTPException) as exc:
            _record(alert, outcomes)
            raise WebhookRetry(f"{rule.webhook_url}: {exc}") from exc
        else:
            if response.status >= 500:
                _record(alert, outcomes)
                raise WebhookRetry(f"{rule.webhook_url} answered {response.status}")
            status = "sent" if response.status < 400 else "rejected"
            outcomes.append({"channel": "webhook", "event": event, "status": status, "detail": str(response.status),
                             "at": now})  # fmt: skip
    _record(alert, outcomes)
    return outcomes


def _already(alert: Alert, channel: str, event: str) -> bool:
    """A retried task does not send what it sent the first time."""
    return any(
        n.get("channel") == channel and n.get("event") == event and n.get("status") == "sent"
        for n in alert.notifications
    )


def _record(alert: Alert, outcomes: list[dict[str, Any]]) -> None:
    if not outcomes:
        return
    with transaction.atomic():
        row = Alert.objects.select_for_update().get(pk=alert.pk)
        row.notifications = [*row.notifications, *outcomes]
        row.save(update_fields=["notifications"])
        alert.notifications = row.notifications
