from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs import registry
from jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    is_finished = serializers.BooleanField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "type",
            "queue",
            "status",
            "params",
            "result",
            "progress",
            "progress_message",
            "log",
            "error",
            "attempts",
            "max_attempts",
            "timeout_seconds",
            "cancel_requested",
            "requested_by",
            "created_at",
            "enqueued_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
            "duration_seconds",
            "is_finished",
        ]
        read_only_fields = fields


class JobSubmitSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64)
    params = serializers.DictField(required=False, default=dict)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)

    def validate_type(self, value: str) -> str:
        spec = registry.get(value)
        if spec is None or not spec.submittable:
            names = ", ".join(t.name for t in registry.all_types() if t.submittable)
            raise serializers.ValidationError(f"unknown job type {value!r}; this API starts: {names}")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        spec = registry.get(attrs["type"])
        assert spec is not None and spec.validate is not None
        try:
            attrs["params"] = spec.validate(attrs.get("params") or {})
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"params": exc.detail}) from None
        return attrs
