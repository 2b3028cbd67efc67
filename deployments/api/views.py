"""REST API of deployments: list, create, deploy (a rollout job), promote, pause, resume, roll back,
rollouts, revisions and events."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deployments import kubernetes, queries, services
from deployments.api.serializers import (
    DeploymentCreateSerializer,
    DeploymentSerializer,
    DeploySerializer,
    EventSerializer,
    RevisionSerializer,
    RollbackSerializer,
    RolloutSerializer,
    ServingSerializer,
)
from deployments.models import NAME_PATTERN, Deployment, DeploymentRevision
from experiments.models import Permission
from registry.permissions import can, visible_models


def _validation_error(error: services.DeploymentError) -> exceptions.ValidationError:
    return exceptions.ValidationError({error.field or "non_field_errors": [str(error)]})


def _conflict(message: str) -> Response:
    return Response({"error": {"code": "conflict", "message": message, "field": "deployment"}}, status=409)


def _require_edit(request: Request, model: Any) -> None:
    """Deploying a model puts it in front of traffic: that takes EDIT on the registered model, as
    any other change to it does, besides the editor role."""
    if not can(request.user, model, Permission.EDIT):
        raise exceptions.PermissionDenied(f"You need EDIT on the registered model {model.name!r} to deploy it.")


class DeploymentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Deployments of registered models. Viewers read; editors create, deploy and roll back.

    A deployment is visible to whoever may read its registered model."""

    queryset = Deployment.objects.none()
    serializer_class = DeploymentSerializer
    lookup_field = "name"
    lookup_value_regex = NAME_PATTERN
    ordering_fields = ["name", "created"]

    def get_queryset(self) -> QuerySet[Deployment]:
        return (
            Deployment.objects.filter(registered_model__in=visible_models(self.request.user))
            .select_related("registered_model", "owner", "holdout_dataset_version__dataset")
            .prefetch_related(Prefetch("revisions", DeploymentRevision.objects.select_related("model_version")))
            .order_by("name")
        )

    @extend_schema(request=DeploymentCreateSerializer, responses={201: DeploymentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = DeploymentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        model = visible_models(request.user).filter(name=values.pop("registered_model")).first()
        if model is None:
            raise exceptions.ValidationError({"registered_model": ["no such registered model"]})
        _require_edit(request, model)
        try:
            deployment = services.create_deployment(
                values.pop("name"), model, values.pop("selector"), owner=request.user, **values
            )
        except services.DeploymentError as error:
            raise _validation_error(error) from None
        return Response(DeploymentSerializer(self.get_queryset().get(pk=deployment.pk)).data, status=201)

    @extend_schema(request=DeploySerializer, responses={201: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, name: str) -> Response:
        """Start a rollout of a version (or alias; default the deployment's selector): a job on the
        `deployments` queue validates and gates it, then shifts traffic by the strategy. 409 while
        another rollout of this deployment is in flight."""
        deployment = self.get_object()
        _require_edit(request, deployment.registered_model)
        data = DeploySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = data.validated_data.get("version") or data.validated_data.get("alias")
        if services.current_rollout(deployment) is not None:
            return _conflict("a rollout of this deployment is in progress: promote it, roll it back or wait for it")
        try:
            rollout = services.deploy(deployment, target, actor=request.user)
        except services.DeploymentError as error:
            if services.current_rollout(deployment) is not None:  # lost a race with another deploy
                return _conflict(str(error))
            raise _validation_error(error) from None
        return Response(RolloutSerializer(queries.rollouts().get(pk=rollout.pk)).data, status=status.HTTP_201_CREATED)

    def _command(self, request: Request, command: str) -> Response:
        deployment = self.get_object()
        _require_edit(request, deployment.registered_model)
        rollout = services.current_rollout(deployment)
        if rollout is None:
            raise exceptions.ValidationError({"rollout": ["no rollout of this deployment is in progress"]})
        try:
            services.command_rollout(rollout, command, actor=request.user)
        except services.DeploymentError as error:
            raise _validation_error(error) from None
        return Response(RolloutSerializer(queries.rollouts().get(pk=rollout.pk)).data)

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, name: str) -> Response:
        """Skip the remaining steps and bake time: the candidate takes all the traffic now (once past its gates)."""
        return self._command(request, "promote")

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        """Hold the rollout at its current traffic split; the bake clock stops until `resume`."""
        return self._command(request, "pause")

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        return self._command(request, "resume")

    @extend_schema(request=RollbackSerializer, responses={200: RevisionSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, name: str) -> Response:
        """Serve an earlier revision again at 100 % (ending any rollout in flight); without a revision,
        roll the rollout in flight back to what served before it."""
        deployment = self.get_object()
        _require_edit(request, deployment.registered_model)
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "revision" not in data.validated_data:
            rollout = services.current_rollout(deployment)
            if rollout is None:
                raise exceptions.ValidationError(
                    {"revision": ["no rollout is in progress: name the revision to serve again"]}
                )
            try:
                rollout = services.rollback_rollout(rollout, actor=request.user)
            except services.DeploymentError as error:
                raise _validation_error(error) from None
            return Response(RolloutSerializer(queries.rollouts().get(pk=rollout.pk)).data)
        revision = (
            deployment.revisions.select_related("model_version").filter(pk=data.validated_data["revision"]).first()
        )
        if revision is None:
            raise exceptions.ValidationError({"revision": ["no such revision of this deployment"]})
        try:
            revision_ = services.rollback(deployment, revision, actor=request.user)
        except services.DeploymentError as error:
            raise _validation_error(error) from None
        return Response(RevisionSerializer(revision_).data)

    @extend_schema(
        parameters=[OpenApiParameter("at", str, description="ISO 8601 time; without an offset it is UTC")],
        responses={200: ServingSerializer},
    )
    @action(detail=True, methods=["get"])
    def serving(self, request: Request, name: str) -> Response:
        """Which versions served, at which weights, at time `at` (default now), from the timeline."""
        deployment = self.get_object()
        when = queries.parse_moment(request.query_params.get("at"))
        if when is None:
            raise exceptions.ValidationError({"at": ["give an ISO 8601 time, e.g. 2026-12-01T14:00:00Z"]})
        serving = queries.serving_at(deployment, when)
        return Response(ServingSerializer.of(deployment, when, serving))

    @extend_schema(
        parameters=[OpenApiParameter("namespace", str, description="default KUBERNETES_NAMESPACE")],
        responses={(200, "application/yaml"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def manifests(self, request: Request, name: str) -> HttpResponse:
        """Kubernetes manifests (ConfigMap, Deployment, Service) of this deployment, as one YAML file."""
        deployment = self.get_object()
        namespace = request.query_params.get("namespace") or None
        if namespace is not None and not kubernetes.is_dns_label(namespace):
            raise exceptions.ValidationError({"namespace": ["a namespace is a DNS label of at most 63 characters"]})
        response = HttpResponse(kubernetes.manifests_yaml(deployment, namespace=namespace), "application/yaml")
        response["Content-Disposition"] = f'attachment; filename="{deployment.name}-kubernetes.yaml"'
        return response

    @extend_schema(responses={200: RolloutSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def rollouts(self, request: Request, name: str) -> Response:
        page = self.paginate_queryset(queries.rollouts().filter(deployment=self.get_object()))
        return self.get_paginated_response(RolloutSerializer(page, many=True).data)

    @extend_schema(responses={200: RevisionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def revisions(self, request: Request, name: str) -> Response:
        rows = self.get_object().revisions.select_related("model_version").order_by("-created", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(responses={200: EventSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def events(self, request: Request, name: str) -> Response:
        page = self.paginate_queryset(self.get_object().events.order_by("-time", "-id"))
        return self.get_paginated_response(EventSerializer(page, many=True).data)
