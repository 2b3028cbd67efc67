"""The write path of monitoring: ground truth (feedback) for predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import record_audit
from deployments.models import Deployment, PredictionLog
from experiments.models import Permission
from monitoring.models import DirtyMinute, Feedback
from monitoring.rollups import minute_of
from registry.permissions import can

MAX_REQUEST_ID = 64
MAX_ROWS_PER_LABEL = 10_000


class FeedbackError(ValueError):
    """Bad feedback: the message names the item and the field (`feedback[3].value`)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class FeedbackForbidden(PermissionError):
    pass


@dataclass
class FeedbackReport:
    received: int
    matched: int  # predictions already in the log; the others join when they arrive

    @property
    def pending(self) -> int:
        return self.received - self.matched


def _finite(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _label_ok(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value and len(value) <= 1000  # PostgreSQL's jsonb refuses NUL
    return isinstance(value, bool) or _finite(value)


def validate_feedback(items: Any) -> list[tuple[str, Any, bool]]:
    """[(request_id, label or value, is_value)], or a FeedbackError naming the first bad field."""
    limit = settings.FEEDBACK_MAX_ITEMS
    if not isinstance(items, list) or not items:
        raise FeedbackError("give a non-empty list of {request_id, label} or {request_id, value}", "feedback")
    if len(items) > limit:
        raise FeedbackError(f"at most {limit} items per request, got {len(items)}", "feedback")
    out: dict[str, tuple[str, Any, bool]] = {}
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise FeedbackError("each item is an object with request_id and label or value", where)
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID or "\x00" in request_id:
            raise FeedbackError(f"a string of 1 to {MAX_REQUEST_ID} characters", f"{where}.request_id")
        unknown = set(item) - {"request_id", "label", "value"}
        if unknown:
            raise FeedbackError(f"unknown field {sorted(unknown)[0]!r}", f"{where}.{sorted(unknown)[0]}")
        if ("label" in item) == ("value" in item):
            raise FeedbackError("give exactly one of label (a class) or value (a regression target)", where)
        is_value = "value" in item
        field = f"{where}.{'value' if is_value else 'label'}"
        truth = item["value" if is_value else "label"]
        check = _finite if is_value else _label_ok
        what = "a finite number" if is_value else "a string, number or boolean"
        if isinstance(truth, list):
            if not 0 < len(truth) <= MAX_ROWS_PER_LABEL or not all(check(v) for v in truth):
                raise FeedbackError(f"a list of 1 to {MAX_ROWS_PER_LABEL} values, each {what}", field)
        elif not check(truth):
            raise FeedbackError(f"must be {what} (or a list of them, one per predicted row)", field)
        out[request_id] = (request_id, truth, is_value)  # the last of duplicates wins, as a retry would
    return list(out.values())


def record_feedback(items: Any, *, actor: Any) -> FeedbackReport:
    """Store (or replace) the truth for each request id and mark the minutes it changes for the rollups.

    Idempotent: posting the same batch again changes nothing. The caller needs EDIT on the registered
    model of every deployment whose predictions it labels (those already logged; feedback for a request
    not logged yet is stored and joins when the prediction arrives)."""
    rows = validate_feedback(items)
    ids = [request_id for request_id, _, _ in rows]
    matched = list(PredictionLog.objects.filter(request_id__in=ids).values_list("request_id", "deployment_id", "time"))
    deployment_ids = {deployment_id for _, deployment_id, _ in matched}
    for deployment in Deployment.objects.filter(pk__in=deployment_ids).select_related("registered_model"):
        if not can(actor, deployment.registered_model, Permission.EDIT):
            raise FeedbackForbidden(
                f"You need EDIT on the registered model {deployment.registered_model.name!r} to label the "
                f"predictions of deployment {deployment.name!r}."
            )
    submitted_by = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    with transaction.atomic():
        Feedback.objects.bulk_create(
            [
                Feedback(request_id=rid, label=truth, is_value=is_value, submitted_by=submitted_by, received=now)
                for rid, truth, is_value in rows
            ],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["request_id"],
            update_fields=["label", "is_value", "submitted_by", "received"],
        )
        DirtyMinute.objects.bulk_create(
            [DirtyMinute(deployment_id=d, minute=m) for d, m in {(d, minute_of(t)) for _, d, t in matched}],
            batch_size=2000,
            ignore_conflicts=True,
        )
        record_audit(actor, "monitoring.feedback", None, {"received": len(rows), "matched": len(set(matched))})
    return FeedbackReport(received=len(rows), matched=len({rid for rid, _, _ in matched}))


# Alert rules ---------------------------------------------------------------------------------------

RULE_FIELDS = ("name", "metric", "comparator", "threshold", "window_minutes", "for_minutes", "severity",
               "min_requests", "enabled", "notify_emails", "webhook_url")  # fmt: skip


class RuleError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _check_rule(values: dict[str, Any]) -> dict[str, Any]:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from monitoring import egress

    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise RuleError(f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    emails = values.get("notify_emails") or []
    if not isinstance(emails, list) or len(emails) > 20:
        raise RuleError("a list of at most 20 e-mail addresses", "notify_emails")
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            raise RuleError(f"{email!r} is not an e-mail address", "notify_emails") from None
    url = values.get("webhook_url") or ""
    if url:
        try:
            egress.resolve(url)
        except egress.EgressDenied as exc:
            raise RuleError(f"the egress policy refuses it: {exc}", "webhook_url") from None
    return values


def create_alert_rule(deployment: Deployment, *, owner: Any, **values: Any) -> Any:
    """A new rule on `deployment` (EDIT on its model is checked by the caller); its webhook secret is made here."""
    import secrets

    from monitoring.models import AlertRule

    _check_rule(values)
    if AlertRule.objects.filter(deployment=deployment, name=values.get("name")).exists():
        raise RuleError("this deployment already has a rule of that name", "name")
    try:
        with transaction.atomic():
            rule = AlertRule.objects.create(
                deployment=deployment, webhook_secret=secrets.token_hex(32),
                owner=owner if getattr(owner, "is_authenticated", False) else None, **values,
            )  # fmt: skip
            record_audit(owner, "alert_rule.create", rule, {"deployment": deployment.name, "metric": rule.metric})
    except IntegrityError:  # a concurrent create of the same name won the unique constraint
        raise RuleError("this deployment already has a rule of that name", "name") from None
    return rule


def update_alert_rule(rule: Any, *, actor: Any, **values: Any) -> Any:
    from monitoring.models import AlertRule

    _check_rule(values)
    if (
        "name" in values
        and AlertRule.objects.filter(deployment=rule.deployment, name=values["name"]).exclude(pk=rule.pk).exists()
    ):
        raise RuleError("this deployment already has a rule of that name", "name")
    with transaction.atomic():
        for key, value in values.items():
            setattr(rule, key, value)
        if {"metric", "comparator", "threshold", "window_minutes"} & set(values):
            rule.breaching_since = None  # a new condition starts its for-duration afresh
        rule.save()
        record_audit(actor, "alert_rule.update", rule, {"fields": sorted(values)})
    return rule
