from __future__ import annotations

from typing import Any

from rest_framework import serializers

from deployments.models import Deployment, DeploymentEvent, DeploymentRevision, Environment, Strategy


class RevisionSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version.version", read_only=True)

    class Meta:
        model = DeploymentRevision
        fields = ["id", "model_version", "traffic_weight", "state", "created"]
        read_only_fields = fields


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
            "owner",
            "created",
            "active_revisions",
        ]
        read_only_fields = fields

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


class DeploySerializer(serializers.Serializer):
    """Either a version number or an alias; neither means the deployment's own selector."""

    version = serializers.IntegerField(min_value=1, required=False)
    alias = serializers.CharField(max_length=255, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "version" in attrs and "alias" in attrs:
            raise serializers.ValidationError("give a version or an alias, not both")
        return attrs


class RollbackSerializer(serializers.Serializer):
    revision = serializers.IntegerField(min_value=1)
