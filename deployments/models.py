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
