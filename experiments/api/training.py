"""REST API of training: the trainers and their parameter schemas, and submitting a training job."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import RolePermission
from datasets.models import DatasetVersion
from experiments.models import Experiment, Permission
from experiments.permissions import can
from experiments.training import Trainer, param_defaults, trainers
from experiments.training.services import allowed_scripts, start_script_job, start_training_job


def _schema(trainer: type[Trainer]) -> dict[str, Any]:
    defaults = param_defaults(trainer)
    fields = {}
    for name, field in trainer.Params().fields.items():
        info: dict[str, Any] = {
            "type": type(field).__name__.replace("Field", "").lower(),
            "default": defaults.get(name),
        }
        for attribute in ("min_value", "max_value", "choices", "help_text"):
            value = getattr(field, attribute, None)
            if value not in (None, ""):
                info[attribute] = list(value) if attribute == "choices" else value
        fields[name] = info
    return fields


@extend_schema(responses={200: inline_serializer("Trainers", {"results": serializers.ListField()})})
@api_view(["GET"])
@permission_classes([RolePermission])
def trainer_list(request: Request) -> Response:
    """Every trainer of the TRAINERS setting with its task and parameter schema (defaults and bounds)."""
    return Response({"results": [
        {"name": name, "label": trainer.label, "task": trainer.task, "params": _schema(trainer)}
        for name, trainer in sorted(trainers().items())
    ]})  # fmt: skip


class TrainingRequest(serializers.Serializer):
    experiment = serializers.CharField(max_length=500, help_text="the experiment's name")
    dataset = serializers.CharField(max_length=100)
    version = serializers.IntegerField(min_value=1)
    target = serializers.CharField(max_length=255)
    trainer = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)
    seed = serializers.IntegerField(required=False, default=0)
    run_name = serializers.CharField(max_length=250, required=False, default="", allow_blank=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)
    max_attempts = serializers.IntegerField(
        min_value=1, max_value=10, required=False, help_text="attempts after a worker dies (default JOB_MAX_ATTEMPTS)"
    )


def editable_experiment(request: Request, name: str) -> Experiment:
    """The experiment a request names, which the user must be able to edit (a 400 if they cannot see it)."""
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None or not can(request.user, experiment, Permission.READ):
        raise exceptions.ValidationError({"experiment": [f"no experiment named {name!r}"]})
    if not can(request.user, experiment, Permission.EDIT):
        raise exceptions.PermissionDenied(f"You need EDIT on the experiment {experiment.name!r} to train into it.")
    return experiment


def training_target(request: Request, values: dict[str, Any]) -> tuple[Experiment, DatasetVersion]:
    """The experiment (EDIT needed) and dataset version a training request names."""
    experiment = editable_experiment(request, values["experiment"])
    version = DatasetVersion.objects.filter(dataset__name=values["dataset"], number=values["version"]).first()
    if version is None:
        raise exceptions.ValidationError(
            {"version": [f"dataset {values['dataset']!r} has no version {values['version']}"]}
        )
    return experiment, version


@extend_schema(
    request=TrainingRequest, responses={202: inline_serializer("TrainingJob", {"id": serializers.IntegerField()})}
)
@api_view(["POST"])
@permission_classes([RolePermission])
def start(request: Request) -> Response:
    """Queue a training job on the `training` queue (editors, with EDIT on the experiment)."""
    data = TrainingRequest(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    experiment, version = training_target(request, values)
    job = start_training_job(
        experiment, dataset_version=version, target=values["target"], trainer=values["trainer"],
        params=values["params"], seed=values["seed"], run_name=values["run_name"], requested_by=request.user,
        timeout_seconds=values.get("timeout_seconds"), max_attempts=values.get("max_attempts"),
    )  # fmt: skip
    return Response({"id": job.pk, "status": job.status, "queue": job.queue, "url": f"/jobs/{job.pk}/"},
                    status=status.HTTP_202_ACCEPTED)  # fmt: skip


class ScriptRequest(serializers.Serializer):
    experiment = serializers.CharField(max_length=500, help_text="the experiment's name")
    path = serializers.CharField(max_length=255, required=False, default="", allow_blank=True,
                                 help_text="a script under TRAINING_SCRIPT_DIRS (GET lists them)")  # fmt: skip
    file = serializers.FileField(required=False, help_text="or upload the script (multipart)")
    args = serializers.JSONField(required=False, default=list, help_text="command-line arguments, a list of strings")
    run_name = serializers.CharField(max_length=250, required=False, default="", allow_blank=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)
    memory_mb = serializers.IntegerField(min_value=64, max_value=65_536, required=False)


@extend_schema(methods=["GET"], responses={200: inline_serializer("Scripts", {"results": serializers.ListField()})})
@extend_schema(
    methods=["POST"],
    request={"multipart/form-data": ScriptRequest, "application/json": ScriptRequest},
    responses={202: inline_serializer("ScriptJob", {"id": serializers.IntegerField()})},
)
@api_view(["GET", "POST"])
@permission_classes([RolePermission])
def script_jobs(request: Request) -> Response:
    """GET: the scripts editors may run by path. POST: run your own training script as a job on the
    `training` queue (editors, with EDIT on the experiment); its `mlflow` calls log into the job's run."""
    if request.method == "GET":
        return Response({"results": allowed_scripts()})
    data = ScriptRequest(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    experiment = editable_experiment(request, values["experiment"])
    args = values["args"]  # JSONField decodes it from a multipart form's text too
    job = start_script_job(
        experiment, requested_by=request.user, upload=values.get("file"), path=values["path"], args=args,
        run_name=values["run_name"], timeout_seconds=values.get("timeout_seconds"), memory_mb=values.get("memory_mb"),
    )  # fmt: skip
    return Response({"id": job.pk, "status": job.status, "queue": job.queue, "url": f"/experiments/training/{job.pk}/"},
                    status=status.HTTP_202_ACCEPTED)  # fmt: skip
