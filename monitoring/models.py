"""Ground truth for predictions, and the per-minute rollups the monitoring charts read.

The model server writes one `deployments.PredictionLog` row per answered request. `Feedback` holds the
true labels (classification) or values (regression) that arrive later, keyed by request id.
`MinuteRollup` aggregates both per deployment, model version, canary arm and minute; the `monitoring.rollup`
beat task fills it from the prediction log with a cursor, and recomputes the minutes whose labels arrived
late (`DirtyMinute`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

# Upper bounds (ms) of the latency histogram buckets of a rollup; the last bucket is everything above.
LATENCY_BOUNDS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 100, 250, 500, 1000, 2500, 5000)
BUCKET_FIELDS = tuple(f"b{i:02d}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class Feedback(models.Model):
    """The truth for one prediction request: a class `label` or a regression `value` (one per row of a
    multi-row request, as a list). Posting again for the same request id replaces it."""

    request_id = models.CharField(max_length=64, unique=True)
    label = models.JSONField(help_text="a class (or a list, one per row) or a number (or a list) for `value`")
    is_value = models.BooleanField(default=False, help_text="a regression target, not a class")
    received = models.DateTimeField(auto_now=True, db_index=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"feedback {self.request_id}"


class MinuteRollup(models.Model):
    """One minute of one deployment's traffic on one model version and arm.

    Counts and histogram buckets add up across minutes, so longer ranges are sums; percentiles come from
    the summed buckets. Accuracy is `correct / labelled`; MAE and RMSE come from the error sums."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    model_version = models.PositiveIntegerField()
    arm = models.CharField(max_length=8)
    minute = models.DateTimeField()
    epoch_minute = models.BigIntegerField(help_text="minutes since 1970: lets SQL bucket ranges portably")
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="5xx answers and predictions that raised")
    client_errors = models.PositiveIntegerField(default=0, help_text="bad input or too large: the caller's fault")
    latency_sum_ms = models.FloatField(default=0.0)
    labelled = models.PositiveIntegerField(default=0, help_text="predicted rows with a class label")
    correct = models.PositiveIntegerField(default=0)
    valued = models.PositiveIntegerField(default=0, help_text="predicted rows with a regression value")
    abs_error_sum = models.FloatField(default=0.0)
    sq_error_sum = models.FloatField(default=0.0)
    # The latency histogram: bucket i counts requests at most LATENCY_BOUNDS_MS[i] (and above the one before).
    for _index, _name in enumerate(BUCKET_FIELDS):
        locals()[_name] = models.PositiveIntegerField(default=0)
    del _index, _name

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "model_version", "arm", "minute"], name="minute_rollup_unique_series"
            )
        ]
        indexes = [models.Index(fields=["deployment", "epoch_minute"], name="minute_rollup_range_idx")]

    def __str__(self) -> str:
        return f"{self.deployment_id} v{self.model_version} {self.arm} {self.minute:%Y-%m-%d %H:%M}"


class RollupCursor(models.Model):
    """How far the rollup fill has read the prediction log (its last id); one row, locked while filling."""

    name = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"


class DirtyMinute(models.Model):
    """A minute whose labels changed after it was rolled up; the next fill recomputes it."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "minute"], name="dirty_minute_unique")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.minute:%Y-%m-%d %H:%M}"


class DriftResult(models.Model):
    """One feature's drift in one window of live traffic, against the reference (the training dataset
    version's profile; for `prediction`, the serving version's own first day of outputs)."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    window_end = models.DateTimeField()
    window_epoch_minute = models.BigIntegerField(default=0, help_text="window_end in minutes since 1970 (for SQL)")
    window_minutes = models.PositiveIntegerField()
    feature = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, help_text="numeric, categorical or prediction")
    n = models.PositiveIntegerField(help_text="live values in the window")
    psi = models.FloatField(null=True)
    ks = models.FloatField(null=True, help_text="numeric: Kolmogorov-Smirnov statistic at histogram resolution")
    chi2 = models.FloatField(null=True, help_text="categorical: chi-square statistic against the reference")
    p_value = models.FloatField(null=True, help_text="categorical: the chi-square test's p-value")
    severity = models.CharField(max_length=16, help_text="none, moderate, major or n/a")
    reference = models.CharField(max_length=255, blank=True, help_text="what the window was compared with")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deployment", "window_end", "feature"], name="drift_result_unique")
        ]
        indexes = [models.Index(fields=["deployment", "window_end"], name="drift_deployment_window_idx")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.feature} {self.window_end:%Y-%m-%d %H:%M} psi={self.psi}"


class AlertMetric(models.TextChoices):
    ERROR_RATE = "error_rate", "error rate (0..1)"
    P95_LATENCY = "p95_latency_ms", "p95 latency (ms)"
    P99_LATENCY = "p99_latency_ms", "p99 latency (ms)"
    MEAN_LATENCY = "mean_latency_ms", "mean latency (ms)"
    REQUEST_RATE = "request_rate", "requests per second"
    ACCURACY = "accuracy", "accuracy (0..1, from feedback)"
    MAE = "mae", "mean absolute error (from feedback)"
    DRIFT = "drift_psi", "largest feature drift (PSI)"
    PREDICTION_DRIFT = "prediction_drift_psi", "prediction drift (PSI)"


class Comparator(models.TextChoices):
    GT = ">", "above"
    GTE = ">=", "at or above"
    LT = "<", "below"
    LTE = "<=", "at or below"


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertRule(models.Model):
    """A condition on one deployment's metric, evaluated on beat: `metric comparator threshold` over the
    last `window_minutes`, holding for `for_minutes` before an alert opens (0: at once)."""

    name = models.CharField(max_length=200)
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="alert_rules")
    metric = models.CharField(max_length=32, choices=AlertMetric.choices)
    comparator = models.CharField(max_length=2, choices=Comparator.choices, default=Comparator.GT)
    threshold = models.FloatField()
    window_minutes = models.PositiveIntegerField(default=5)
    for_minutes = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    min_requests = models.PositiveIntegerField(
        default=10, help_text="fewer requests (or labels) in the window: not judged"
    )
    enabled = models.BooleanField(default=True)
    notify_emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret = models.CharField(max_length=64, blank=True, help_text="signs webhook payloads (HMAC-SHA256)")
    breaching_since = models.DateTimeField(null=True, blank=True, help_text="when the condition started to hold")
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "name"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="alert_rule_unique_name")]

    def __str__(self) -> str:
        return f"{self.name}: {self.metric} {self.comparator} {self.threshold:g}"

    @property
    def condition(self) -> str:
        what = f"{self.get_metric_display()} {self.get_comparator_display()} {self.threshold:g}"
        return f"{what} over {self.window_minutes} min"


class AlertStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(models.Model):
    """One firing of a rule: open → acknowledged → resolved. At most one unresolved alert per rule, so a
    condition that keeps holding updates its alert instead of piling up new ones."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    value = models.FloatField(help_text="the metric when the alert opened")
    last_value = models.FloatField()
    message = models.TextField()
    opened_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notifications = models.JSONField(default=list, blank=True, help_text="[{channel, event, status, detail, at}]")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"], condition=~models.Q(status="resolved"), name="alert_one_unresolved_per_rule"
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"], name="alert_status_opened_idx")]

    def __str__(self) -> str:
        return f"{self.rule.name} ({self.status})"
