from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from datasets.models import DatasetVersion
from deployments.models import Deployment, DeploymentEvent, DeploymentRevision, Environment, Rollout, Strategy
from deployments.queries import Serving


class RevisionSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version.version", read_only=True)

    class Meta:
        model = DeploymentRevision
        fields = ["id", "model_version", "traffic_weight", "state", "created", "loaded_at", "load_error"]
        read_only_fields = fields


class RolloutSerializer(serializers.ModelSerializer):
    """A rollout as its job left it: status, step, bake time, gate results and the last live check."""

    deployment = serializers.CharField(source="deployment.name", read_only=True)
    model_version = serializers.IntegerField(source="revision.model_version.version", read_only=True)
    baseline_version = serializers.SerializerMethodField()
    traffic_weight = serializers.IntegerField(source="current_weight", read_only=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    job_progress = serializers.IntegerField(source="job.progress", read_only=True, default=None)
    job_message = serializers.CharField(source="job.progress_message", read_only=True, default="")
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id", "deployment", "model_version", "baseline_version", "revision", "strategy", "steps", "bake_seconds",
            "status", "step_index", "traffic_weight", "baked_seconds", "step_started", "paused", "gates",
            "health", "reason", "job", "job_progress", "job_message", "requested_by", "created", "finished",
        ]  # fmt: skip
        read_only_fields = fields

    def get_baseline_version(self, rollout: Rollout) -> int | None:
        return rollout.baseline.model_version.version if rollout.baseline is not None else None


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = DeploymentEvent
        fields = ["id", "kind", "actor", "time", "from_version", "to_version", "detail"]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    active_revisions = serializers.SerializerMethodField()
    holdout_dataset_version = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "name",
            "registered_model",
            "selector",
            "environment",
            "replicas",
            "resources",
            "strategy",
            "canary_steps",
            "bake_seconds",
            "holdout_dataset_version",
            "target_column",
            "min_accuracy",
            "champion_margin",
            "latency_budget_ms",
            "max_error_rate",
            "min_canary_requests",
            "owner",
            "created",
            "active_revisions",
        ]
        read_only_fields = fields

    def get_holdout_dataset_version(self, deployment: Deployment) -> dict[str, Any] | None:
        version = deployment.holdout_dataset_version
        return {"dataset": version.dataset.name, "version": version.number} if version is not None else None

    def get_active_revisions(self, deployment: Deployment) -> list[dict[str, Any]]:
        active = [r for r in deployment.revisions.all() if r.state == "active"]
        return RevisionSerializer(active, many=True).data  # type: ignore[return-value]


class DeploymentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    registered_model = serializers.CharField(max_length=256)
    selector = serializers.CharField(max_length=255)
    environment = serializers.ChoiceField(choices=Environment.choices, default=Environment.STAGING)
    replicas = serializers.IntegerField(min_value=1, max_value=100, default=1)
    resources = serializers.DictField(required=False, default=dict)
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.ALL_AT_ONCE)
    canary_steps = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    bake_seconds = serializers.IntegerField(min_value=0, max_value=7 * 24 * 3600, default=300)
    holdout_dataset = serializers.CharField(max_length=100, required=False, help_text="dataset name of the holdout")
    holdout_version = serializers.IntegerField(min_value=1, required=False, help_text="its version number")
    target_column = serializers.CharField(max_length=255, required=False, default="")
    min_accuracy = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    champion_margin = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    latency_budget_ms = serializers.FloatField(min_value=0.001, max_value=600_000, required=False, allow_null=True)
    max_error_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.05)
    min_canary_requests = serializers.IntegerField(min_value=1, max_value=1_000_000, default=20)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """`holdout_dataset` and `holdout_version` name the holdout together (the version's number)."""
        name, number = attrs.pop("holdout_dataset", None), attrs.pop("holdout_version", None)
        if (name is None) != (number is None):
            field = "holdout_version" if number is None else "holdout_dataset"
            raise serializers.ValidationError({field: ["give holdout_dataset and holdout_version together"]})
        if name is not None:
            version = DatasetVersion.objects.filter(dataset__name=name, number=number).first()
            if version is None:
                raise serializers.ValidationError({"holdout_version": [f"dataset {name!r} has no version {number}"]})
            attrs["holdout_dataset_version"] = version
        return attrs


class DeploySerializer(serializers.Serializer):
    """Either a version number or an alias; neither means the deployment's own selector."""

    version = serializers.IntegerField(min_value=1, required=False)
    alias = serializers.CharField(max_length=255, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "version" in attrs and "alias" in attrs:
            raise serializers.ValidationError("give a version or an alias, not both")
        return attrs


class RollbackSerializer(serializers.Serializer):
    """A revision to serve again; without one, the rollout in flight is rolled back."""

    revision = serializers.IntegerField(min_value=1, required=False)


class ServingSerializer(serializers.Serializer):
    """What served at a moment: versions with weights, and the event that set the split."""

    deployment = serializers.CharField()
    at = serializers.DateTimeField()
    versions = serializers.ListField(child=serializers.DictField())
    since = serializers.DateTimeField(allow_null=True)
    event = serializers.IntegerField(allow_null=True)

    @staticmethod
    def of(deployment: Deployment, at: datetime, serving: Serving) -> dict[str, Any]:
        return {
            "deployment": deployment.name,
            "at": at.isoformat(),
            "versions": [{"version": v, "traffic_weight": serving.weights[v]} for v in serving.versions],
            "since": serving.since.time.isoformat() if serving.since else None,
            "event": serving.since.pk if serving.since else None,
        }
