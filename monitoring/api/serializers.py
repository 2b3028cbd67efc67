from __future__ import annotations

from typing import Any

from rest_framework import serializers

from monitoring.models import Alert, AlertMetric, AlertRule, Comparator, Severity


class AlertRuleSerializer(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment.name", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "deployment", "metric", "comparator", "threshold", "window_minutes", "for_minutes",
            "severity", "min_requests", "enabled", "notify_emails", "webhook_url", "breaching_since", "last_value",
            "last_evaluated", "owner", "created",
        ]  # fmt: skip
        read_only_fields = ["id", "deployment", "breaching_since", "last_value", "last_evaluated", "owner", "created"]

    def to_representation(self, rule: AlertRule) -> dict[str, Any]:
        """Where notifications go (a webhook URL is often a credential) is for editors of the model only."""
        data = super().to_representation(rule)
        if not self.context.get("can_edit", lambda _rule: False)(rule):
            data["webhook_url"] = "" if not rule.webhook_url else "(hidden)"
            data["notify_emails"] = []
        return data


class AlertRuleWriteSerializer(serializers.Serializer):
    """What a client sends; `deployment` (a name) only when creating."""

    deployment = serializers.CharField(max_length=63, required=False)
    name = serializers.CharField(max_length=200)
    metric = serializers.ChoiceField(choices=AlertMetric.choices)
    comparator = serializers.ChoiceField(choices=Comparator.choices, default=Comparator.GT)
    threshold = serializers.FloatField()
    window_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=5)
    for_minutes = serializers.IntegerField(min_value=0, max_value=7 * 24 * 60, default=0)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.WARNING)
    min_requests = serializers.IntegerField(min_value=1, max_value=1_000_000, default=10)
    enabled = serializers.BooleanField(default=True)
    notify_emails = serializers.ListField(child=serializers.CharField(max_length=254), max_length=20, default=list)
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name", read_only=True)
    rule_id = serializers.IntegerField(read_only=True)
    deployment = serializers.CharField(source="deployment.name", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    resolved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "rule_id", "deployment", "status", "severity", "value", "last_value", "message", "opened_at",
            "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "notifications",
        ]  # fmt: skip
        read_only_fields = fields
