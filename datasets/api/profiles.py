"""REST API of profiles and diffs: read or re-run a version's profile, diff two versions."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets import profiles
from datasets.diff import diff_versions
from datasets.models import DatasetVersion
from datasets.queries import diff_pair, profile_of, profile_state
from mlops_portal.api import error_body


def _version(name: str, number: int) -> DatasetVersion:
    return get_object_or_404(DatasetVersion.objects.select_related("dataset"), dataset__name=name, number=number)


class VersionProfileView(APIView):
    """GET: the version's profile and its job's progress. POST (editors): profile it again."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="datasets_versions_profile_retrieve")
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(profile_state(profile_of(_version(name, number))))

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT}, operation_id="datasets_versions_profile_create")
    def post(self, request: Request, name: str, number: int) -> Response:
        version = _version(name, number)
        profile, started = profiles.request_profile(version, requested_by=request.user)
        body = {**profile_state(profile), "started": started}
        return Response(body, status=status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK)


class DatasetDiffView(APIView):
    """What changed between versions `a` and `b` of a dataset (default: the latest and its parent)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("a", int, description="The base version's number (default: b's parent)"),
            OpenApiParameter("b", int, description="The compared version's number (default: the latest)"),
        ],
        responses=OpenApiTypes.OBJECT,
        operation_id="datasets_diff",
    )
    def get(self, request: Request, name: str) -> Response:
        try:
            a, b = diff_pair(name, request.query_params.get("a"), request.query_params.get("b"))
        except ValueError as exc:
            return Response(error_body("invalid", str(exc), "a"), status=status.HTTP_400_BAD_REQUEST)
        return Response(diff_versions(a, b))
