"""REST API of monitoring: ground truth for predictions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import RolePermission
from monitoring import services


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
