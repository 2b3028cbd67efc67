"""REST API of datasets: list and read datasets and versions, push (streamed), download, delete."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, mixins, status, viewsets
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import can
from datasets import dvc, services
from datasets.api.serializers import (
    DatasetSerializer,
    DatasetVersionSerializer,
    FromDvcSerializer,
    PushResultSerializer,
)
from datasets.api.uploads import (
    CappedUploadHandler,
    StreamParser,
    UploadTooLargeError,
    raw_body_chunks,
    refuse_if_declared_too_large,
    uploaded_file_chunks,
)
from datasets.inspect import DatasetInputError
from datasets.models import NAME_PATTERN, Dataset, DatasetVersion
from datasets.queries import dataset_list, version_list
from datasets.storage import IncompleteUpload, UploadTooLarge, get_storage
from mlops_portal.api import error_body

logger = logging.getLogger(__name__)


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Datasets, each with its latest version. Every signed-in user sees every dataset."""

    queryset = Dataset.objects.none()
    serializer_class = DatasetSerializer
    lookup_field = "name"
    lookup_value_regex = NAME_PATTERN
    ordering_fields = ["name", "created"]  # ?ordering=-created

    def get_queryset(self) -> QuerySet[Dataset]:
        return dataset_list()


def _dataset(name: str) -> Dataset:
    return get_object_or_404(Dataset, name=name)


def _version(name: str, number: int) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.select_related("dataset", "blob", "author", "parent"), dataset__name=name, number=number
    )


class VersionListView(generics.GenericAPIView):
    """A dataset's versions, newest first; POST pushes a new version (the body is the file)."""

    serializer_class = DatasetVersionSerializer
    parser_classes = [MultiPartParser, StreamParser]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Before anything parses the body (the session CSRF check reads form data): multipart file parts
        # go to a capped temp file, never into memory.
        request.upload_handlers = [CappedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[DatasetVersion]:
        return version_list(_dataset(self.kwargs["name"]))

    @extend_schema(operation_id="datasets_versions_list")
    def get(self, request: Request, name: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        serializer = self.get_serializer(page, many=True)
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("filename", str, description="The file's name; its extension tells the format"),
            OpenApiParameter("message", str, description="What changed in this version"),
            OpenApiParameter("format", str, enum=["csv", "parquet", "jsonl", "directory"], required=False),
        ],
        responses={201: PushResultSerializer, 200: PushResultSerializer},
        operation_id="datasets_versions_create",
    )
    def post(self, request: Request, name: str) -> Response:
        try:
            services.validate_name(name)
        except services.InvalidDatasetName as exc:
            return Response(error_body("invalid", str(exc), "name"), status=status.HTTP_400_BAD_REQUEST)
        django_request = request._request
        refuse_if_declared_too_large(django_request)
        format_hint = request.query_params.get("format") or None
        if (request.content_type or "").startswith("multipart/form-data"):
            upload = request.FILES.get("file")
            if upload is None:
                raise exceptions.ValidationError({"file": ["Send the dataset as the form field 'file'."]})
            filename = request.data.get("filename") or upload.name or ""
            message = request.data.get("message") or request.query_params.get("message", "")
            format_hint = request.data.get("format") or format_hint
            chunks, expected = uploaded_file_chunks(upload), None
        else:
            filename = request.query_params.get("filename") or request.headers.get("X-Filename", "")
            message = request.query_params.get("message", "")
            chunks, expected = raw_body_chunks(django_request)
        return _push_response(
            lambda: services.push_version(
                name,
                chunks,
                filename=filename,
                message=message,
                author=request.user,
                expected_size=expected,
                format=format_hint,
            ),
            field="file",
        )


def _push_response(push: Callable[[], tuple[Any, bool]], *, field: str) -> Response:
    """Run a push (an upload, or a DVC object made a version) and answer as the versions endpoint
    does: 201 for a new version, 200 with `"created": false` for content the dataset holds, and
    the push's refusals as errors naming `field`."""
    try:
        version, created = push()
    except UploadTooLarge as exc:
        raise UploadTooLargeError.for_limit(exc.limit) from None
    except IncompleteUpload as exc:
        return Response(error_body("incomplete_upload", str(exc), field), status=status.HTTP_400_BAD_REQUEST)
    except DatasetInputError as exc:
        return Response(
            error_body("invalid_dataset", exc.message, field, details=exc.details), status=status.HTTP_400_BAD_REQUEST
        )
    body = PushResultSerializer(version, context={"created": created}).data
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class VersionFromDvcView(APIView):
    """Make a file (or directory) that `dvc push` stored in the portal's DVC remote a version, by its md5."""

    @extend_schema(
        request=FromDvcSerializer,
        responses={201: PushResultSerializer, 200: PushResultSerializer, 404: OpenApiTypes.OBJECT},
        operation_id="datasets_versions_from_dvc",
    )
    def post(self, request: Request, name: str) -> Response:
        params = FromDvcSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            return _push_response(
                lambda: dvc.version_from_dvc(
                    name,
                    data["md5"],
                    remote=data.get("remote") or None,
                    filename=data.get("filename") or "",
                    message=data.get("message", ""),
                    author=request.user,
                    format=data.get("format"),
                ),
                field="md5",
            )
        except services.InvalidDatasetName as exc:
            return Response(error_body("invalid", str(exc), "name"), status=status.HTTP_400_BAD_REQUEST)
        except dvc.InvalidDvcObject as exc:
            return Response(error_body("invalid", str(exc), "md5"), status=status.HTTP_400_BAD_REQUEST)
        except dvc.DvcObjectNotFound as exc:
            return Response(error_body("not_found", str(exc), "md5"), status=status.HTTP_404_NOT_FOUND)
        except FileNotFoundError:  # the row is there but its bytes are gone from storage
            message = f"The bytes of DVC object {data['md5']} are missing from storage; push it again."
            return Response(error_body("not_found", message, "md5"), status=status.HTTP_404_NOT_FOUND)


class VersionDetailView(APIView):
    """One version with everything it records; DELETE removes it unless something depends on it."""

    @extend_schema(responses=DatasetVersionSerializer, operation_id="datasets_versions_retrieve")
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(DatasetVersionSerializer(_version(name, number)).data)

    @extend_schema(responses={204: None, 409: OpenApiTypes.OBJECT}, operation_id="datasets_versions_destroy")
    def delete(self, request: Request, name: str, number: int) -> Response:
        version = _version(name, number)
        if not can(request.user, "delete", version):
            raise exceptions.PermissionDenied(
                "Only the dataset's owner, the version's author or an admin can delete a version."
            )
        try:
            services.delete_version(version, actor=request.user)
        except services.DatasetInUse as exc:
            return Response(
                error_body(
                    "in_use",
                    str(exc),
                    details={"dependants": [d.as_dict() for d in exc.dependants], "hidden_dependants": exc.hidden},
                ),
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnyAccept(BaseContentNegotiation):
    """Downloads answer with the file whatever the client accepts (`curl -H 'Accept: text/csv'` included)."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def etag_matches(header: str, sha256: str) -> bool:
    for token in header.split(","):
        token = token.strip().removeprefix("W/").strip('"')
        if token in ("*", sha256):
            return True
    return False


class VersionDownloadView(APIView):
    """The version's bytes, streamed. The ETag is the SHA-256, so If-None-Match answers 304."""

    content_negotiation_class = AnyAccept

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 304: None},
        operation_id="datasets_versions_download",
    )
    def get(self, request: Request, name: str, number: int) -> HttpResponse:
        version = _version(name, number)
        etag = f'"{version.blob_id}"'
        if etag_matches(request.headers.get("If-None-Match", ""), version.blob_id):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = etag
            return not_modified
        try:
            handle = get_storage().open(version.blob_id)
        except FileNotFoundError:
            logger.error("dataset blob missing from storage", extra={"sha256": version.blob_id})
            raise exceptions.NotFound("The stored bytes of this version are missing; tell an administrator.") from None
        response = FileResponse(
            handle, as_attachment=True, filename=download_name(version), content_type="application/octet-stream"
        )
        response["ETag"] = etag
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-cache"  # revalidate with If-None-Match; the bytes never change
        response["X-Checksum-Sha256"] = version.blob_id
        return response


def download_name(version: DatasetVersion) -> str:
    suffixes = PurePosixPath(version.filename.lower()).suffixes[-2:]
    if suffixes[:1] != [".tar"]:
        suffixes = suffixes[-1:]
    extension = "".join(suffixes)
    if not extension or len(extension) > 12 or not extension[1:].replace(".", "").isalnum():
        extension = "" if version.format == "directory" else f".{version.format}"
    return f"{version.dataset.name}-v{version.number}{extension}"
