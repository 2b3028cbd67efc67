"""The model registry: registered models, their numbered versions, tags, aliases, and the timeline.

Times are integer milliseconds since the epoch, as MLflow sends them. A version's number is unique per
model and never reused: `RegisteredModel.last_version` counts every version ever created, deleted ones
included (MLflow keeps deleted versions as hidden rows for the same reason: `models:/m/3` must never
come to mean a different model).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from experiments.models import Permission, Run, now_ms


class Stage(models.TextChoices):
    """MLflow's (deprecated but still used) model version stages, spelled as the client sends them."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


class VersionStatus(models.TextChoices):
    """Versions are READY when created: their files are already in the portal's artifact store."""

    PENDING = "PENDING_REGISTRATION"
    FAILED = "FAILED_REGISTRATION"
    READY = "READY"


class RegisteredModel(models.Model):
    """A named model whose versions point at model files logged to the tracking server."""

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_version = models.PositiveIntegerField(
        default=0, help_text="the highest version number ever given, deleted versions included"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModelTag(models.Model):
    """A key/value tag on a registered model."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="registered_model_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RegisteredModelPermission(models.Model):
    """What one user may do with one registered model: READ, EDIT or MANAGE (creators get MANAGE)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=8, choices=Permission.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "user"], name="registered_model_permission_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.level} {self.model}"


class ModelVersion(models.Model):
    """One version of a registered model: where its files are, and the run and logged model it came from.

    `source` is what the client sent (`runs:/…`, `models:/…`, `mlflow-artifacts:/…`); `storage_location`
    is the `mlflow-artifacts:/` URI it resolved to when registered, which is what clients download."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    source = models.CharField(max_length=1000)
    storage_location = models.CharField(max_length=1000)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    run_link = models.CharField(max_length=1000, blank=True)
    logged_model_id = models.CharField(
        max_length=64, null=True, blank=True, help_text="the MLflow 3 logged model (`model_id`)"
    )
    description = models.TextField(blank=True)
    status = models.CharField(max_length=24, choices=VersionStatus.choices, default=VersionStatus.READY)
    status_message = models.TextField(blank=True)
    current_stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NONE)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)
    user_id = models.CharField(max_length=256, blank=True)
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["model", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class ModelVersionTag(models.Model):
    """A key/value tag on a model version."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="model_version_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RegisteredModelAlias(models.Model):
    """A movable name (`champion`) for one version of a model: `models:/name@champion`."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="registered_model_alias_unique")]

    def __str__(self) -> str:
        return f"{self.model_id}@{self.alias}"


class RegistryEvent(models.Model):
    """One entry of a model's timeline: who moved what from where to where, and when.

    Versions are recorded by number, not by row, so the timeline outlives deleted versions and can
    answer "which version carried the Production stage (or the champion alias) at time T"."""

    class Kind(models.TextChoices):
        MODEL_CREATED = "model_created"
        MODEL_RENAMED = "model_renamed"
        VERSION_CREATED = "version_created"
        VERSION_DELETED = "version_deleted"
        STAGE_CHANGED = "stage_changed"
        ALIAS_SET = "alias_set"
        ALIAS_DELETED = "alias_deleted"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    version = models.PositiveIntegerField(null=True, blank=True)
    alias = models.CharField(max_length=255, blank=True)
    from_value = models.CharField(max_length=256, blank=True, help_text="the stage, alias target or name before")
    to_value = models.CharField(max_length=256, blank=True, help_text="the stage, alias target or name after")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["model", "-timestamp", "-id"], name="registry_event_timeline_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.model_id} v{self.version}"
