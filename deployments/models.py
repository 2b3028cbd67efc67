"""Deployments: a registered model bound to an environment, its revisions and its event history.

A deployment names what to serve (a registered model, by alias or version number) and how (environment,
replicas, resources, rollout strategy). Each deploy creates a `DeploymentRevision` pinned to one model
version; the model server serves the active revisions, weighted by `traffic_weight`. Every change is a
`DeploymentEvent`, so "which version served production at 14:00" is a query over events.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry.models import ModelVersion, RegisteredModel

NAME_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # a DNS label, so it can name a Kubernetes Service


class Environment(models.TextChoices):
    STAGING = "staging"
    PRODUCTION = "production"


class Strategy(models.TextChoices):
    ALL_AT_ONCE = "all_at_once"
    BLUE_GREEN = "blue_green"
    CANARY = "canary"


class Deployment(models.Model):
    """What to serve (a registered model by alias or version number) and how to roll it out."""

    name = models.SlugField(max_length=63, unique=True)
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="deployments")
    selector = models.CharField(max_length=255, help_text="an alias (`champion`) or a version number (`3`)")
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.STAGING)
    replicas = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])
    resources = models.JSONField(default=dict, blank=True, help_text="Kubernetes-style requests and limits")
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.ALL_AT_ONCE)
    canary_steps = models.JSONField(default=list, blank=True, help_text="traffic percentages, e.g. [10, 50, 100]")
    bake_seconds = models.PositiveIntegerField(default=300, help_text="how long each canary step runs")
    # Gates the rollout job checks before any traffic moves, and the live limits of a canary.
    holdout_dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="labelled rows the candidate is scored on before it serves",
    )  # fmt: skip
    target_column = models.CharField(max_length=255, blank=True, help_text="the label column of the holdout")
    min_accuracy = models.FloatField(null=True, blank=True, help_text="holdout accuracy the candidate must reach")
    champion_margin = models.FloatField(
        default=0.0, help_text="how far below the serving version's holdout accuracy the candidate may fall"
    )
    latency_budget_ms = models.FloatField(
        null=True, blank=True, help_text="p95 latency of one prediction, offline gate and live canary limit"
    )
    max_error_rate = models.FloatField(default=0.05, help_text="live canary error rate that triggers a rollback")
    min_canary_requests = models.PositiveIntegerField(
        default=20, help_text="canary requests needed before the live error rate and latency are judged"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RevisionState(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"


class DeploymentRevision(models.Model):
    """One model version as deployed: the server serves the active ones, split by `traffic_weight`."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="revisions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployment_revisions")
    traffic_weight = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    state = models.CharField(max_length=8, choices=RevisionState.choices, default=RevisionState.PENDING)
    created = models.DateTimeField(auto_now_add=True)
    # Written by the model server once it has loaded and warmed the revision up (or failed to).
    loaded_at = models.DateTimeField(null=True, blank=True)
    load_error = models.TextField(blank=True)

    class Meta:
        ordering = ["deployment", "-created", "-id"]
        indexes = [models.Index(fields=["state", "deployment"], name="deployment_revision_state_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(traffic_weight__lte=100), name="deployment_revision_weight_at_most_100"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} r{self.pk} ({self.state})"


class DeploymentEvent(models.Model):
    """One step of a deployment's history: who did what, when, from which model version to which."""

    class Kind(models.TextChoices):
        CREATED = "created"
        ROLLOUT_STARTED = "rollout_started"
        PROMOTED = "promoted"
        ROLLED_BACK = "rolled_back"
        PAUSED = "paused"
        RESUMED = "resumed"
        VALIDATED = "validated"
        GATE_PASSED = "gate_passed"
        GATE_FAILED = "gate_failed"
        TRAFFIC_SHIFTED = "traffic_shifted"
        ROLLOUT_FAILED = "rollout_failed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    time = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.deployment_id} {self.from_version}→{self.to_version}"


class RolloutStatus(models.TextChoices):
    QUEUED = "queued"
    VALIDATING = "validating"
    GATING = "gating"
    ROLLING_OUT = "rolling_out"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


ACTIVE_ROLLOUT_STATUSES = (
    RolloutStatus.QUEUED, RolloutStatus.VALIDATING, RolloutStatus.GATING, RolloutStatus.ROLLING_OUT,
)  # fmt: skip


class Rollout(models.Model):
    """One deploy of a candidate revision, walked by the `deployments.rollout` job.

    The row is the rollout's state, so a worker that dies mid-rollout resumes from the stored step and
    bake time: validate and gate the candidate, then shift traffic by the strategy (all at once,
    blue/green, canary steps with a bake time each), judging the canary on live error rate and latency.
    Users pause it (`paused` stops the bake clock) or promote or roll it back at once through the services.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="rollouts")
    revision = models.ForeignKey(DeploymentRevision, on_delete=models.CASCADE, related_name="+")
    baseline = models.ForeignKey(
        DeploymentRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="what served all the traffic when the rollout started",
    )  # fmt: skip
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    steps = models.JSONField(default=list, blank=True, help_text="traffic percentages the candidate walks")
    bake_seconds = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.QUEUED)
    step_index = models.IntegerField(default=-1, help_text="index into steps; -1 before traffic moves")
    baked_seconds = models.FloatField(default=0.0, help_text="bake time spent in the current step")
    step_started = models.DateTimeField(null=True, blank=True, help_text="when the current step's traffic moved")
    paused = models.BooleanField(default=False)
    gates = models.JSONField(default=list, blank=True, help_text="[{name, passed, value, threshold, message}]")
    health = models.JSONField(default=dict, blank=True, help_text="the last live check of the canary")
    reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # One rollout at a time per deployment: a second deploy is refused, not interleaved.
            models.UniqueConstraint(
                fields=["deployment"],
                condition=models.Q(status__in=ACTIVE_ROLLOUT_STATUSES),
                name="deployment_one_active_rollout",
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.deployment_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_ROLLOUT_STATUSES

    @property
    def current_weight(self) -> int:
        return self.steps[self.step_index] if 0 <= self.step_index < len(self.steps) else 0


class PredictionLog(models.Model):
    """One answered prediction request, written by the model server in batches (monitoring reads it)."""

    time = models.DateTimeField(db_index=True)
    # Indexed in Meta, not with db_index: on PostgreSQL that adds a second, `varchar_pattern_ops` index
    # for LIKE, which no query uses.
    request_id = models.CharField(max_length=64)
    # No index of their own: the (revision, time) and (deployment, time) indexes below lead with them, and
    # every index is work for each of the hundreds of rows a second the model server writes.
    # No foreign key constraints either: PostgreSQL checked both for every row at commit, a third of what
    # the database spends on a flush of the log. What they guaranteed still holds: the writer locks the
    # batch's revisions (FOR KEY SHARE; a revision's own key keeps its deployment) in the transaction that
    # writes the rows and leaves out rows whose revision is gone or not their deployment's
    # (deployments/server/predlog.py), and triggers delete a deployment's or a revision's rows with it
    # (migration 0004), so none are left behind.
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    revision = models.ForeignKey(
        DeploymentRevision, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    model_version = models.PositiveIntegerField()
    arm = models.CharField(max_length=8, default="stable", help_text="stable or canary")
    latency_ms = models.FloatField()
    status = models.PositiveSmallIntegerField()
    error = models.CharField(max_length=16, blank=True, help_text="bad_input, too_large or model_error")
    rows = models.PositiveIntegerField(default=0)
    inputs = models.JSONField(null=True, blank=True, help_text="the request body, when sampled")
    outputs = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["revision", "time"], name="prediction_revision_time_idx"),
            models.Index(fields=["deployment", "time"], name="prediction_deployment_time_idx"),
            models.Index(fields=["request_id"], name="prediction_request_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"

    @staticmethod
    def model_errors() -> models.Q:
        """The answers the model is to blame for: a 5xx, or a prediction that raised (not a client's bad input)."""
        return models.Q(status__gte=500) | models.Q(error="model_error")
