from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.serializers import ApiTokenSerializer, MeSerializer, NewApiTokenSerializer
from accounts.models import ApiToken
from accounts.services import create_api_token, revoke_api_token, role_of


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request: Request) -> Response:
    """Who the credentials belong to, and their role."""
    user = request.user
    return Response({"username": user.get_username(), "email": user.email, "role": role_of(user)})


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your own API tokens. Creating one returns its secret once; deleting revokes it."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()
    # Any signed-in user manages their own tokens, viewers included.
    required_role = "viewer"

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=self.request.user).order_by("-created_at")

    @extend_schema(responses={201: NewApiTokenSerializer})
    def create(self, request: Request) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = create_api_token(
            request.user,
            serializer.validated_data["name"],
            actor=request.user,
            expires_at=serializer.validated_data.get("expires_at"),
        )
        data = NewApiTokenSerializer(issued.token).data
        data["token"] = issued.secret
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        revoke_api_token(instance, actor=self.request.user)
