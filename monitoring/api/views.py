"""REST API of monitoring: ground truth for predictions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import RolePermission
from accounts.services import record_audit
from deployments.models import Deployment
from experiments.models import Permission
from monitoring import alerts, services
from monitoring.api.serializers import AlertRuleSerializer, AlertRuleWriteSerializer, AlertSerializer
from monitoring.models import Alert, AlertRule, AlertStatus
from registry.permissions import can, visible_models


@extend_schema(
    request=inline_serializer(
        "FeedbackRequest",
        {"feedback": serializers.ListField(child=serializers.DictField(), help_text="{request_id, label | value}")},
    ),
    responses={
        200: inline_serializer(
            "FeedbackResponse",
            {
                "received": serializers.IntegerField(),
                "matched": serializers.IntegerField(),
                "pending": serializers.IntegerField(),
            },
        )
    },
    examples=[
        OpenApiExample(
            "classes and values",
            value={"feedback": [{"request_id": "9f1c…", "label": 1}, {"request_id": "77aa…", "value": 12.5}]},
        )
    ],
)
@api_view(["POST"])
@permission_classes([RolePermission])
def feedback(request: Request) -> Response:
    """The true label (class) or value (regression target) of predictions, by the request id the model
    server answered with (`X-Request-Id`); up to FEEDBACK_MAX_ITEMS (10,000) per call, minutes or days
    after the prediction. Posting again replaces. `matched` counts predictions already logged; the
    `pending` rest joins when they are."""
    return _feedback(request)


@extend_schema(exclude=True)
@api_view(["POST"])
@permission_classes([RolePermission])
def feedback_with_slash(request: Request) -> Response:
    """The same, for clients that add a trailing slash."""
    return _feedback(request)


def _feedback(request: Request) -> Response:
    items = request.data.get("feedback") if isinstance(request.data, dict) else request.data
    try:
        report = services.record_feedback(items, actor=request.user)
    except services.FeedbackError as error:
        raise exceptions.ValidationError({error.field: [str(error)]}) from None
    except services.FeedbackForbidden as error:
        raise exceptions.PermissionDenied(str(error)) from None
    return Response({"received": report.received, "matched": report.matched, "pending": report.pending})


# Alert rules and alerts ------------------------------------------------------------------------------


def _rules_visible(user: Any) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(deployment__registered_model__in=visible_models(user)).select_related(
        "deployment__registered_model", "owner"
    )


def _require_edit(user: Any, deployment: Deployment) -> None:
    if not can(user, deployment.registered_model, Permission.EDIT):
        raise exceptions.PermissionDenied(
            f"You need EDIT on the registered model {deployment.registered_model.name!r} to change its alerts."
        )


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules on deployments: visible with the deployment's model, changed with EDIT on it."""

    serializer_class = AlertRuleSerializer
    queryset = AlertRule.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self) -> dict[str, Any]:
        user = self.request.user
        known: dict[int, bool] = {}  # one permission lookup per model, not per rule

        def can_edit(rule: AlertRule) -> bool:
            model = rule.deployment.registered_model
            if model.pk not in known:
                known[model.pk] = can(user, model, Permission.EDIT)
            return known[model.pk]

        return {**super().get_serializer_context(), "can_edit": can_edit}

    def get_queryset(self) -> QuerySet[AlertRule]:
        rules = _rules_visible(self.request.user).order_by("deployment__name", "name")
        deployment = self.request.query_params.get("deployment")
        return rules.filter(deployment__name=deployment) if deployment else rules

    @extend_schema(request=AlertRuleWriteSerializer, responses={201: AlertRuleSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = AlertRuleWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        name = values.pop("deployment", None)
        if not name:
            raise exceptions.ValidationError({"deployment": ["name the deployment the rule watches"]})
        deployment = (
            Deployment.objects.filter(registered_model__in=visible_models(request.user), name=name)
            .select_related("registered_model")
            .first()
        )
        if deployment is None:
            raise exceptions.ValidationError({"deployment": [f"no deployment named {name!r}"]})
        _require_edit(request.user, deployment)
        try:
            rule = services.create_alert_rule(deployment, owner=request.user, **values)
        except services.RuleError as error:
            raise exceptions.ValidationError({error.field: [str(error)]}) from None
        body = AlertRuleSerializer(rule, context=self.get_serializer_context()).data
        # The webhook secret is shown once, to its creator, so receivers can check signatures.
        return Response({**body, "webhook_secret": rule.webhook_secret}, status=status.HTTP_201_CREATED)

    @extend_schema(request=AlertRuleWriteSerializer, responses={200: AlertRuleSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()
        _require_edit(request.user, rule.deployment)
        data = AlertRuleWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = {k: v for k, v in data.validated_data.items() if k in request.data and k != "deployment"}
        try:
            rule = services.update_alert_rule(rule, actor=request.user, **values)
        except services.RuleError as error:
            raise exceptions.ValidationError({error.field: [str(error)]}) from None
        return Response(AlertRuleSerializer(rule, context=self.get_serializer_context()).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()
        _require_edit(request.user, rule.deployment)
        record_audit(request.user, "alert_rule.delete", rule, {"deployment": rule.deployment.name})
        rule.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts of the deployments the caller can see, newest first; `?status=open` and `?deployment=` filter."""

    serializer_class = AlertSerializer
    queryset = Alert.objects.none()

    def get_queryset(self) -> QuerySet[Alert]:
        found = Alert.objects.filter(deployment__registered_model__in=visible_models(self.request.user))
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in AlertStatus.values:
                raise exceptions.ValidationError({"status": [f"one of {', '.join(AlertStatus.values)}"]})
            found = found.filter(status=wanted)
        if self.request.query_params.get("deployment"):
            found = found.filter(deployment__name=self.request.query_params["deployment"])
        return found.select_related("rule", "deployment", "acknowledged_by", "resolved_by").order_by(
            "-opened_at", "-id"
        )

    def _act(self, request: Request, act: Any) -> Response:
        alert = self.get_object()
        deployment = Deployment.objects.select_related("registered_model").get(pk=alert.deployment_id)
        _require_edit(request.user, deployment)
        try:
            alert = act(alert, actor=request.user)
        except alerts.AlertError as error:
            raise exceptions.ValidationError({error.field: [str(error)]}) from None
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        return self._act(request, alerts.acknowledge)

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        return self._act(request, alerts.resolve_by_hand)
