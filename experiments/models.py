"""Experiments, runs and what runs log: the data behind the MLflow-compatible tracking API.

Times are integer milliseconds since the epoch, as MLflow stores and sends them. Metric values
that are NaN are stored as 0 with `is_nan` set (SQLite cannot store NaN); ±infinity are stored as
they are.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db import models


def now_ms() -> int:
    return int(time.time() * 1000)


def new_run_id() -> str:
    return uuid.uuid4().hex


class LifecycleStage(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Permission(models.TextChoices):
    READ = "READ"
    EDIT = "EDIT"
    MANAGE = "MANAGE"


PERMISSION_RANK = {"NO_PERMISSIONS": 0, Permission.READ: 1, Permission.EDIT: 2, Permission.MANAGE: 3}


class Experiment(models.Model):
    """A named group of runs. Experiment 0, "Default", always exists (created by a migration)."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=500, unique=True)
    artifact_location = models.CharField(max_length=1000)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE)
    creation_time = models.BigIntegerField(default=now_ms)
    last_update_time = models.BigIntegerField(default=now_ms, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_update_time", "-id"]

    def __str__(self) -> str:
        return self.name


class ExperimentTag(models.Model):
    """A key/value tag on an experiment (`mlflow.note.content` holds its description)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="experiment_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class ExperimentPermission(models.Model):
    """What one user may do with one experiment: READ, EDIT or MANAGE (creators get MANAGE)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=8, choices=Permission.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "user"], name="experiment_permission_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.level} {self.experiment}"


class Run(models.Model):
    """One execution of training code, logging params, metrics, tags, inputs and artifacts."""

    run_uuid = models.CharField(max_length=32, primary_key=True, default=new_run_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=250, blank=True)
    user_id = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField(default=now_ms)
    end_time = models.BigIntegerField(null=True, blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE)
    artifact_uri = models.CharField(max_length=1000)
    deleted_time = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-start_time", "run_uuid"]
        indexes = [
            models.Index(fields=["experiment", "lifecycle_stage", "-start_time", "run_uuid"], name="run_search_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.run_uuid

    @property
    def is_finished(self) -> bool:
        return self.status not in (RunStatus.RUNNING, RunStatus.SCHEDULED)


class Param(models.Model):
    """An immutable hyperparameter of a run: logging the same key with another value is an error."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="param_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RunTag(models.Model):
    """A mutable key/value tag on a run (`mlflow.runName`, `mlflow.user`, `mlflow.source.name`…)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class Metric(models.Model):
    """One point of a metric's history. Identical points are stored once, so retries are harmless.

    No index of its own on `run`: the unique constraint starts with it, and every extra index on
    this table, the biggest one, costs time on each of the thousands of points a batch inserts.
    (The same holds for params, tags and latest metrics, whose unique constraints start with `run`.)"""

    id = models.BigAutoField(primary_key=True)
    # No foreign key constraint: PostgreSQL checked it row by row at commit, a fifth of a 1000-point
    # log-batch. What it guaranteed still holds: the statement that inserts points locks its run
    # (FOR KEY SHARE) until they are committed, so a deletion waits for them, and a trigger on the run
    # table deletes a run's points with the run (migration 0008), so none are left behind.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics", db_index=False, db_constraint=False)
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "key", "step", "timestamp", "value", "is_nan"], name="metric_point_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]={self.value}"


BUCKET_BITS = 10  # a MetricBucket covers 1,024 consecutive steps


class MetricBucket(models.Model):
    """A summary of a metric's points whose steps fall in one block of 2**BUCKET_BITS steps: how many,
    the lowest and highest finite value and where they are. Kept in the statement that appends the
    points, from the rows actually inserted (a retried batch changes nothing), so a chart of a
    million-point history reads about a thousand of these instead of a million points."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=250)
    bucket = models.BigIntegerField(help_text="step >> BUCKET_BITS")
    points = models.BigIntegerField()
    non_finite = models.BigIntegerField(help_text="NaN and infinite points")
    min_value = models.FloatField(null=True, help_text="the lowest finite value")
    min_step = models.BigIntegerField(null=True)
    max_value = models.FloatField(null=True, help_text="the highest finite value")
    max_step = models.BigIntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key", "bucket"], name="metric_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.key}[{self.bucket}]"


class ExperimentKey(models.Model):
    """Every param, metric and tag key any run of the experiment has logged, kept as they are logged.

    The runs table offers them as columns; finding them with DISTINCT over all params, metrics and
    tags of a 10,000-run experiment cost 60 ms a page view. Keys are never removed (a key deleted
    from every run stays offered, and shows empty)."""

    class Kind(models.TextChoices):
        PARAM = "param"
        METRIC = "metric"
        TAG = "tag"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=6, choices=Kind.choices)
    key = models.CharField(max_length=250)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "kind", "key"], name="experiment_key_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class LatestMetric(models.Model):
    """Each run's latest value per metric key (max step, then timestamp, then value), for search and tables."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latest_metrics", db_index=False)
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="latest_metric_unique_key")]
        indexes = [models.Index(fields=["key", "value"], name="latest_metric_key_value_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class RunInput(models.Model):
    """A dataset a run used (MLflow `log_input`); the digest links it to a dataset version."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="inputs")
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=64, db_index=True)
    source_type = models.CharField(max_length=100)
    source = models.TextField()
    schema = models.TextField(blank=True)
    profile = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name", "digest"], name="run_input_unique_dataset")]

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


class LoggedModel(models.Model):
    """An MLflow 3 logged model: a model's artifacts, params, tags, and the run that produced it."""

    model_id = models.CharField(max_length=64, primary_key=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="logged_models")
    name = models.CharField(max_length=500)
    artifact_location = models.CharField(max_length=1000)
    status = models.CharField(max_length=32, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING)
    status_message = models.TextField(blank=True)
    model_type = models.CharField(max_length=500, blank=True)
    source_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    creation_timestamp_ms = models.BigIntegerField(default=now_ms)
    last_updated_timestamp_ms = models.BigIntegerField(default=now_ms)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACTIVE)

    class Meta:
        ordering = ["-creation_timestamp_ms"]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_id})"


class LoggedModelTag(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="logged_model_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class LoggedModelParam(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="logged_model_param_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RunOutput(models.Model):
    """A logged model a run produced (MLflow `runs/outputs`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="outputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="+")
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model"], name="run_output_unique_model")]

    def __str__(self) -> str:
        return f"{self.run_id} -> {self.model_id}"


class SweepStrategy(models.TextChoices):
    GRID = "grid", "Grid"
    RANDOM = "random", "Random"


class Sweep(models.Model):
    """A hyperparameter search: one training job per trial, at most `max_concurrency` of them at a time.

    The trials are decided when the sweep is created (the whole grid, or `n_trials` random draws from the
    space with the sweep's seed), so a sweep is reproducible and its page can show what is still to come.
    Trials get their job as slots free up (experiments/training/sweeps.py::advance_sweep).
    """

    name = models.CharField(max_length=200)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="sweeps")
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    target = models.CharField(max_length=255)
    trainer = models.CharField(max_length=100)
    base_params = models.JSONField(default=dict, blank=True, help_text="Parameters every trial shares")
    space = models.JSONField(help_text="Per parameter: a list of values, or {min, max[, log]} for random draws")
    strategy = models.CharField(max_length=16, choices=SweepStrategy.choices, default=SweepStrategy.GRID)
    metric = models.CharField(max_length=64, help_text="The held-out score that picks the best trial")
    goal = models.CharField(max_length=8, choices=[("max", "maximise"), ("min", "minimise")])
    max_concurrency = models.PositiveSmallIntegerField(default=2)
    seed = models.PositiveIntegerField(default=0)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Per trial")
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class SweepTrial(models.Model):
    """One point of a sweep's space; `job` is set when it is handed to a worker."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    params = models.JSONField(help_text="The trainer's full parameters for this trial")
    job = models.OneToOneField("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["sweep", "number"]
        constraints = [models.UniqueConstraint(fields=["sweep", "number"], name="sweep_trial_number")]

    def __str__(self) -> str:
        return f"{self.sweep} trial {self.number}"
