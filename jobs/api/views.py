from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import services
from jobs.api.serializers import JobSerializer, JobSubmitSerializer
from jobs.models import Job, JobStatus


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    type = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Job
        fields = ["status", "type", "created_after"]


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Background jobs. Poll a job's `status` and `progress`; they come from the job's database row."""

    queryset = Job.objects.select_related("requested_by")
    serializer_class = JobSerializer
    filterset_class = JobFilter
    ordering_fields = ["created_at", "finished_at", "status"]

    def get_queryset(self) -> QuerySet[Job]:
        return super().get_queryset().order_by("-created_at", "-id")

    @extend_schema(request=JobSubmitSerializer, responses={202: JobSerializer})
    def create(self, request: Request) -> Response:
        submit = JobSubmitSerializer(data=request.data)
        submit.is_valid(raise_exception=True)
        job = services.submit_job(
            submit.validated_data["type"],
            params=submit.validated_data["params"],
            requested_by=request.user,
            timeout_seconds=submit.validated_data.get("timeout_seconds"),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = services.cancel_job(self.get_object(), actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
