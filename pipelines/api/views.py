"""REST API of pipelines: definitions and versions, runs (start, read, cancel, re-run), schedules, triggers,
the webhook token, and the webhook itself (the one route a token of its own opens, without an account)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.decorators import public
from accounts.permissions import RolePermission
from mlops_portal.api import StandardPagination, json_error
from pipelines import engine, services
from pipelines.models import Pipeline, PipelineRun, Schedule, Trigger, TriggerKind
from pipelines.services import may_change
from pipelines.spec import SpecError, parse


def _invalid(exc: SpecError | engine.RunError) -> exceptions.ValidationError:
    where = exc.where if isinstance(exc, SpecError) else exc.field
    return exceptions.ValidationError({where: [exc.message]})


def _pipeline(name: str) -> Pipeline:
    pipeline = Pipeline.objects.select_related("owner").filter(name=name).first()
    if pipeline is None:
        raise exceptions.NotFound(f"no pipeline {name!r}")
    return pipeline


def _require_change(user: Any, pipeline: Pipeline) -> None:
    if not may_change(user, pipeline):
        raise exceptions.PermissionDenied(f"Only the owner of {pipeline.name!r} or an admin may change it.")


def run_json(run: PipelineRun, *, with_steps: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pipeline": run.pipeline.name, "number": run.number, "version": run.version.number, "status": run.status,
        "params": run.params, "trigger": run.trigger, "trigger_details": run.trigger_details,
        "created_at": run.created_at, "finished_at": run.finished_at,
        "rerun_of": run.trigger_details.get("rerun_of"), "url": f"/pipelines/{run.pipeline.name}/runs/{run.number}/",
    }  # fmt: skip
    if with_steps:
        out["steps"] = [
            {"name": s.name, "type": s.type, "status": s.status, "attempts": s.attempts, "job": s.job_id,
             "inputs": s.inputs, "outputs": s.outputs, "error": s.error, "started_at": s.started_at,
             "finished_at": s.finished_at, "cached_from": s.cached_from_id}
            for s in run.steps.all()
        ]  # fmt: skip
    return out


def pipeline_json(pipeline: Any, *, detail: bool) -> dict[str, Any]:
    """A pipeline; a list's rows carry `latest_number` (annotated) instead of a query each."""
    latest = pipeline.latest_version() if detail else None
    number = latest.number if latest else getattr(pipeline, "latest_number", None)
    out: dict[str, Any] = {
        "name": pipeline.name, "description": pipeline.description,
        "owner": pipeline.owner.get_username() if pipeline.owner else None,
        "version": number, "webhook": bool(pipeline.webhook_token_digest),
        "url": f"/pipelines/{pipeline.name}/",
    }  # fmt: skip
    if detail:
        out["definition"] = latest.spec if latest else None
        out["versions"] = [{"number": v.number, "digest": v.digest, "created_at": v.created_at}
                           for v in pipeline.versions.order_by("-number")[:100]]  # fmt: skip
        out["schedules"] = [{"id": s.pk, "cron": s.cron, "params": s.params, "paused": s.paused, "catchup": s.catchup,
                             "next_run_at": s.next_run_at, "last_run_at": s.last_run_at}
                            for s in pipeline.schedules.all()]  # fmt: skip
        out["triggers"] = [{"id": t.pk, "kind": t.kind, "source": t.source, "params": t.params,
                            "cooldown_seconds": t.cooldown_seconds, "enabled": t.enabled,
                            "last_fired_at": t.last_fired_at} for t in pipeline.triggers.all()]  # fmt: skip
    return out


class DefinitionRequest(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)
    definition = serializers.JSONField(help_text="the definition as an object, or JSON/YAML text")


@extend_schema(methods=["GET"], operation_id="pipelines_list", responses={200: OpenApiTypes.OBJECT})
@extend_schema(methods=["POST"], request=DefinitionRequest, responses={201: OpenApiTypes.OBJECT})
@api_view(["GET", "POST"])
@permission_classes([RolePermission])
def pipeline_list(request: Request) -> Response:
    """GET: every pipeline, paged. POST: define a pipeline, or add a version to yours (a definition equal
    to the newest version adds nothing: 200 instead of 201)."""
    if request.method == "GET":
        paginator = StandardPagination()
        rows = Pipeline.objects.select_related("owner").annotate(latest_number=Max("versions__number"))
        page = paginator.paginate_queryset(rows.order_by("name"), request)
        return paginator.get_paginated_response([pipeline_json(p, detail=False) for p in page or []])
    data = DefinitionRequest(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    definition = values["definition"]
    try:
        if isinstance(definition, str):
            definition = parse(definition)
        version, created = services.save_definition(
            values["name"], definition, actor=request.user, description=values["description"]
        )
    except SpecError as exc:
        raise _invalid(exc) from None
    except services.NotOwner as exc:
        raise exceptions.PermissionDenied(str(exc)) from None
    body = {**pipeline_json(version.pipeline, detail=True), "created_version": created}
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([RolePermission])
def pipeline_detail(request: Request, name: str) -> Response:
    """A pipeline with its newest definition, its versions, schedules and triggers."""
    return Response(pipeline_json(_pipeline(name), detail=True))


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([RolePermission])
def version_detail(request: Request, name: str, number: int) -> Response:
    version = _pipeline(name).versions.filter(number=number).first()
    if version is None:
        raise exceptions.NotFound(f"{name!r} has no version {number}")
    return Response({"pipeline": name, "number": version.number, "digest": version.digest, "definition": version.spec,
                     "created_at": version.created_at})  # fmt: skip


class RunRequest(serializers.Serializer):
    params = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(min_value=1, required=False, help_text="default: the newest")


@extend_schema(methods=["GET"], operation_id="pipeline_runs_list", responses={200: OpenApiTypes.OBJECT})
@extend_schema(methods=["POST"], request=RunRequest, responses={202: OpenApiTypes.OBJECT})
@api_view(["GET", "POST"])
@permission_classes([RolePermission])
def run_list(request: Request, name: str) -> Response:
    """GET: the pipeline's runs, newest first, paged. POST: run it now (editors) with `params`."""
    pipeline = _pipeline(name)
    if request.method == "GET":
        paginator = StandardPagination()
        runs = pipeline.runs.select_related("pipeline", "version").order_by("-number")
        page = paginator.paginate_queryset(runs, request)
        return paginator.get_paginated_response([run_json(r, with_steps=False) for r in page or []])
    data = RunRequest(data=request.data)
    data.is_valid(raise_exception=True)
    version = None
    if "version" in data.validated_data:
        version = pipeline.versions.filter(number=data.validated_data["version"]).first()
        if version is None:
            raise exceptions.ValidationError({"version": [f"{name!r} has no version {data.validated_data['version']}"]})
    try:
        run = engine.start_run(pipeline, params=data.validated_data["params"], requested_by=request.user,
                               version=version)  # fmt: skip
    except engine.RunError as exc:
        raise _invalid(exc) from None
    return Response(run_json(_run(name, run.number), with_steps=True), status=status.HTTP_202_ACCEPTED)


def _run(name: str, number: int) -> PipelineRun:
    run = PipelineRun.objects.select_related("pipeline", "version").filter(pipeline__name=name, number=number).first()
    if run is None:
        raise exceptions.NotFound(f"{name!r} has no run {number}")
    return run


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([RolePermission])
def run_detail(request: Request, name: str, number: int) -> Response:
    """A run with every step: status, attempts, job, inputs, outputs, error, times."""
    return Response(run_json(_run(name, number), with_steps=True))


@extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def run_cancel(request: Request, name: str, number: int) -> Response:
    run = _run(name, number)
    if run.requested_by_id != request.user.pk and not may_change(request.user, run.pipeline):
        raise exceptions.PermissionDenied("Only who started the run, the pipeline's owner or an admin may cancel it.")
    engine.cancel_run(run, actor=request.user)
    return Response(run_json(_run(name, number), with_steps=True))


@extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def run_rerun(request: Request, name: str, number: int) -> Response:
    """A new run of the same version and parameters that keeps what succeeded (cached) and runs the rest."""
    try:
        run = engine.rerun_from_failed(_run(name, number), requested_by=request.user)
    except engine.RunError as exc:
        raise exceptions.ValidationError({exc.field: [exc.message]}) from None
    return Response(run_json(_run(name, run.number), with_steps=True), status=status.HTTP_202_ACCEPTED)


class ScheduleRequest(serializers.Serializer):
    cron = serializers.CharField(max_length=100, help_text="five cron fields, or @hourly, @daily, @weekly, @monthly")
    params = serializers.DictField(required=False, default=dict)
    catchup = serializers.BooleanField(required=False, default=False)


@extend_schema(request=ScheduleRequest, responses={201: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def schedule_create(request: Request, name: str) -> Response:
    pipeline = _pipeline(name)
    _require_change(request.user, pipeline)
    data = ScheduleRequest(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        services.create_schedule(pipeline, data.validated_data["cron"], params=data.validated_data["params"],
                                 catchup=data.validated_data["catchup"], actor=request.user)  # fmt: skip
    except SpecError as exc:
        raise _invalid(exc) from None
    return Response(pipeline_json(pipeline, detail=True), status=status.HTTP_201_CREATED)


class SchedulePatch(serializers.Serializer):
    paused = serializers.BooleanField()


@extend_schema(methods=["PATCH"], request=SchedulePatch, responses={200: OpenApiTypes.OBJECT})
@extend_schema(methods=["DELETE"], responses={204: None})
@api_view(["PATCH", "DELETE"])
@permission_classes([RolePermission])
def schedule_detail(request: Request, name: str, schedule_id: int) -> Response:
    """PATCH {"paused": true|false}: pause or resume (resuming starts from now). DELETE: remove."""
    pipeline = _pipeline(name)
    _require_change(request.user, pipeline)
    schedule = Schedule.objects.filter(pipeline=pipeline, pk=schedule_id).first()
    if schedule is None:
        raise exceptions.NotFound(f"{name!r} has no schedule {schedule_id}")
    if request.method == "DELETE":
        schedule.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
    data = SchedulePatch(data=request.data)
    data.is_valid(raise_exception=True)
    services.set_schedule_paused(schedule, data.validated_data["paused"], actor=request.user)
    return Response(pipeline_json(pipeline, detail=True))


class TriggerRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[TriggerKind.DATASET.value, TriggerKind.ALERT.value])
    source = serializers.CharField(max_length=200, help_text="the dataset's name, or the deployment's")
    params = serializers.DictField(required=False, default=dict)
    cooldown_seconds = serializers.IntegerField(min_value=0, max_value=30 * 86400, required=False, default=3600)


@extend_schema(request=TriggerRequest, responses={201: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def trigger_create(request: Request, name: str) -> Response:
    pipeline = _pipeline(name)
    _require_change(request.user, pipeline)
    data = TriggerRequest(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    try:
        services.create_trigger(pipeline, values["kind"], values["source"], params=values["params"],
                                cooldown_seconds=values["cooldown_seconds"], actor=request.user)  # fmt: skip
    except SpecError as exc:
        raise _invalid(exc) from None
    return Response(pipeline_json(pipeline, detail=True), status=status.HTTP_201_CREATED)


@extend_schema(responses={204: None})
@api_view(["DELETE"])
@permission_classes([RolePermission])
def trigger_delete(request: Request, name: str, trigger_id: int) -> Response:
    pipeline = _pipeline(name)
    _require_change(request.user, pipeline)
    if not Trigger.objects.filter(pipeline=pipeline, pk=trigger_id).delete()[0]:
        raise exceptions.NotFound(f"{name!r} has no trigger {trigger_id}")
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def webhook_token(request: Request, name: str) -> Response:
    """A new webhook token (shown once; the previous one stops working)."""
    pipeline = _pipeline(name)
    _require_change(request.user, pipeline)
    token = services.issue_webhook_token(pipeline, actor=request.user)
    return Response({"token": token, "url": f"/api/v1/pipelines/{name}/webhook/", "header": "X-Pipeline-Token"},
                    status=status.HTTP_201_CREATED)  # fmt: skip


@public
@csrf_exempt
@require_POST
def webhook(request: HttpRequest, name: str) -> JsonResponse:
    """Start a run from outside (CI, a scheduler, another system) with the pipeline's webhook token in
    `X-Pipeline-Token`; the body may be {"params": {...}}. The run is requested by the pipeline's owner."""
    pipeline = services.pipeline_for_webhook(name, request.headers.get("X-Pipeline-Token", ""))
    if pipeline is None:
        return json_error(401, "UNAUTHENTICATED", "unknown pipeline or wrong X-Pipeline-Token")
    if len(request.body) > 64 * 1024:
        return json_error(413, "TOO_LARGE", "the body is over 65536 bytes", "params")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return json_error(400, "INVALID_PARAMETER_VALUE", "the body is not JSON", "params")
    params = body.get("params", {}) if isinstance(body, dict) else None
    try:
        run = engine.start_run(pipeline, params=params, trigger=TriggerKind.WEBHOOK,
                               details={"remote": request.META.get("REMOTE_ADDR", "")},
                               requested_by=pipeline.owner)  # fmt: skip
    except engine.RunError as exc:
        return json_error(400, "INVALID_PARAMETER_VALUE", exc.message, exc.field)
    return JsonResponse(run_json(run, with_steps=False), status=202)


@extend_schema(responses={200: OpenApiTypes.STR})
@api_view(["GET"])
@permission_classes([RolePermission])
def export(request: Request, name: str, target: str) -> HttpResponse:
    """The pipeline (`?version=N`, default the newest) as an Airflow DAG file (`airflow`) or a Kubeflow
    Pipelines v2 YAML compiled by kfp (`kubeflow`); each step runs `manage.py run_step` on the portal's code."""
    from pipelines import exports

    pipeline = _pipeline(name)
    number = request.query_params.get("version", "")
    if number and not number.isdigit():
        raise exceptions.ValidationError({"version": ["a version number"]})
    version = pipeline.versions.filter(number=number).first() if number else pipeline.latest_version()
    if version is None:
        raise exceptions.NotFound(f"{name!r} has no version {number}" if number else f"{name!r} has no definition")
    if target == "airflow":
        body, kind, filename = exports.airflow_dag(version), "text/x-python", f"{name}.py"
    elif target == "kubeflow":
        body, kind, filename = exports.kfp_yaml(version), "application/yaml", f"{name}.yaml"
    else:
        raise exceptions.NotFound("export to airflow or kubeflow")
    response = HttpResponse(body, content_type=f"{kind}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
