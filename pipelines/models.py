"""Pipelines: versioned DAG definitions, their runs and step runs, schedules and triggers.

A step run's work is a Job of the step's own kind (a training job, a rollout, a script job, or a
`pipelines.step` job for the small steps), so the job machinery gives every step its queue, heartbeats,
retries after a dead worker, timeouts, cancel and log. The engine (pipelines/engine.py) starts the steps
whose dependencies are done and hears of each job's end through the jobs registry's finish listeners.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Pipeline(models.Model):
    """A named DAG of steps. Its definition lives in versions; `webhook_token_digest` is the SHA-256 of the
    token that lets a webhook call start a run (empty: no webhook)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    webhook_token_digest = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> PipelineVersion | None:
        return self.versions.order_by("-number").first()


class PipelineVersion(models.Model):
    """One definition of a pipeline, immutable once saved; a new definition is a new version (saving the
    same definition again is not)."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField(help_text="params, steps (name, type, args, needs, retries, timeout_seconds, cache)")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON of the spec")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "-number"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_version_number")]

    def __str__(self) -> str:
        return f"{self.pipeline} v{self.number}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TriggerKind(models.TextChoices):
    MANUAL = "manual", "By hand"
    SCHEDULE = "schedule", "Schedule"
    DATASET = "dataset", "New dataset version"
    ALERT = "alert", "Alert"
    WEBHOOK = "webhook", "Webhook"
    RERUN = "rerun", "Re-run from the failed step"
    EXTERNAL = "external", "Kubeflow or Airflow"


class PipelineRun(models.Model):
    """One execution of one version of a pipeline, with the parameters it ran with and what started it."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(PipelineVersion, on_delete=models.PROTECT, related_name="runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=16, choices=TriggerKind.choices, default=TriggerKind.MANUAL)
    trigger_details = models.JSONField(default=dict, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    cancel_requested = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_run_number")]
        indexes = [models.Index(fields=["pipeline", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.pipeline} run {self.number}"

    @property
    def is_finished(self) -> bool:
        return self.status != RunStatus.RUNNING

    @property
    def duration_seconds(self) -> float | None:
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return max((end - self.created_at).total_seconds(), 0.0)


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    CACHED = "cached", "Cached"
    FAILED = "failed", "Failed"
    UPSTREAM_FAILED = "upstream_failed", "Upstream failed"
    CANCELLED = "cancelled", "Cancelled"


DONE_STEP = (StepStatus.SUCCEEDED, StepStatus.CACHED)
FINAL_STEP = (*DONE_STEP, StepStatus.FAILED, StepStatus.UPSTREAM_FAILED, StepStatus.CANCELLED)


class StepRun(models.Model):
    """One step of one run: its resolved arguments, the job doing it (the latest of its attempts), its
    outputs (references into the stores: run ids, model URIs, dataset versions; never the data), and the
    cache key that lets an unchanged step with unchanged inputs be skipped."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    inputs = models.JSONField(default=dict, blank=True, help_text="The arguments after templating")
    outputs = models.JSONField(default=dict, blank=True)
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="step_run_name")]

    def __str__(self) -> str:
        return f"{self.run} / {self.name}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        return max(((self.finished_at or timezone.now()) - self.started_at).total_seconds(), 0.0)


class Schedule(models.Model):
    """Start a run on a cron expression or a preset (@hourly, @daily, @weekly), evaluated on beat in
    TIME_ZONE. Missed times are not made up for (one run, not a pile) unless `catchup` is set."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    paused = models.BooleanField(default=False)
    catchup = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "id"]

    def __str__(self) -> str:
        return f"{self.pipeline} {self.cron}"


class Trigger(models.Model):
    """Start a run when something happens: a new version of a dataset, or an alert opening on a deployment.
    A cooldown keeps a storm of events to one run; `params` are templated with the event's values."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="triggers")
    kind = models.CharField(max_length=16, choices=[(TriggerKind.DATASET.value, TriggerKind.DATASET.label),
                                                    (TriggerKind.ALERT.value, TriggerKind.ALERT.label)])  # fmt: skip
    source = models.CharField(max_length=200, help_text="The dataset's name, or the deployment's name")
    params = models.JSONField(default=dict, blank=True)
    cooldown_seconds = models.PositiveIntegerField(default=3600)
    enabled = models.BooleanField(default=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "id"]
        indexes = [models.Index(fields=["kind", "source"])]

    def __str__(self) -> str:
        return f"{self.pipeline} on {self.kind} {self.source}"
