"""Step types: what a pipeline's steps can do, each through the app that owns the work.

A step type checks its arguments when a definition is saved (`Args`, a DRF serializer; templated values are
checked when the run renders them), pins what it reads before the cache key is taken (`resolve`: "the newest
version" becomes a version number, a script path its content's digest), starts the work as a job (`start`)
and reads the step's outputs from the job's result (`outputs`). Steps that are only a few queries or one
model load (`validate_dataset`, `evaluate`, `register`, `function`) run in a `pipelines.step` job; the rest
are the owning app's own jobs: a dataset profile, a training job, a script job, a rollout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework import serializers

from jobs.models import Job
from mlops_portal.api import first_message

if TYPE_CHECKING:
    from jobs.runner import JobContext
    from pipelines.models import PipelineRun, StepRun

INLINE_JOB = "pipelines.step"
MAX_OUTPUT_BYTES = 64 * 1024


class StepFailed(Exception):
    """The step's work ended but did not do what the step is for (a gate said no, a rollout rolled back)."""


def _templated(value: Any) -> bool:
    from pipelines.spec import references

    return bool(references(value))


class StepType:
    name: ClassVar[str]
    label: ClassVar[str]
    cacheable: ClassVar[bool] = True
    Args: ClassVar[type[serializers.Serializer]]

    @classmethod
    def check_args(cls, args: dict[str, Any], where: str) -> None:
        from pipelines.spec import SpecError

        fields = cls.Args().fields
        unknown = sorted(set(args) - set(fields))
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}", f"unknown argument; {cls.name} takes {', '.join(fields)}")
        concrete = {k: v for k, v in args.items() if not _templated(v)}
        serializer = cls.Args(data=concrete, partial=True)
        if not serializer.is_valid():
            field = next(iter(serializer.errors))
            raise SpecError(f"{where}.{field}", first_message(serializer.errors[field]))
        for name, field in fields.items():
            if field.required and name not in args:
                raise SpecError(f"{where}.{name}", "this argument is required")

    @classmethod
    def clean(cls, args: dict[str, Any]) -> dict[str, Any]:
        """The rendered arguments, checked in full (a StepFailed names the bad one)."""
        serializer = cls.Args(data=args)
        if not serializer.is_valid():
            field = next(iter(serializer.errors))
            raise StepFailed(f"argument {field}: {first_message(serializer.errors[field])}")
        return dict(serializer.validated_data)

    def resolve(self, args: dict[str, Any], run: PipelineRun) -> dict[str, Any]:
        return args

    def start(self, step: StepRun, args: dict[str, Any], user: Any) -> Job:
        from jobs.services import submit_job

        return submit_job(INLINE_JOB, params={"step_run_id": step.pk}, requested_by=user)

    def run(self, ctx: JobContext, step: StepRun, args: dict[str, Any], user: Any) -> dict[str, Any]:
        raise NotImplementedError  # only the inline step types run here

    def outputs(self, job: Job) -> dict[str, Any]:
        """The job's result. Outputs are references and small values: large data goes through the artifact
        store (a run's artifacts, a dataset version), never through the database or the broker."""
        result = dict(job.result or {})
        if len(json.dumps(result, default=str)) > MAX_OUTPUT_BYTES:
            raise StepFailed(f"the outputs are over {MAX_OUTPUT_BYTES} bytes: log large data as artifacts instead")
        return result


def _version(dataset: str, number: int | None) -> Any:
    from datasets.models import DatasetVersion

    versions = DatasetVersion.objects.select_related("dataset").filter(dataset__name=dataset)
    found = versions.filter(number=number).first() if number else versions.order_by("-number").first()
    if found is None:
        raise StepFailed(f"dataset {dataset!r} has no version {number}" if number else f"no dataset {dataset!r}")
    return found


class DatasetArgs(serializers.Serializer):
    dataset = serializers.CharField(max_length=100)
    version = serializers.IntegerField(min_value=1, required=False, help_text="default: the newest")


class DatasetStep(StepType):
    def resolve(self, args: dict[str, Any], run: PipelineRun) -> dict[str, Any]:
        return {**args, "version": _version(args["dataset"], args.get("version")).number}


class ProfileDataset(DatasetStep):
    name = "profile_dataset"
    label = "Profile a dataset version"
    Args = DatasetArgs

    def start(self, step: StepRun, args: dict[str, Any], user: Any) -> Job:
        from datasets.profiles import start_profile

        profile = start_profile(_version(args["dataset"], args["version"]), requested_by=user)
        if profile.job is None:
            raise StepFailed(profile.error or "this dataset version cannot be profiled")
        return profile.job


class ValidateArgs(DatasetArgs):
    min_rows = serializers.IntegerField(min_value=0, required=False, default=1)
    columns = serializers.ListField(child=serializers.CharField(max_length=255), required=False, default=list,
                                    help_text="columns that must be there")  # fmt: skip


class ValidateDataset(DatasetStep):
    name = "validate_dataset"
    label = "Validate a dataset version (rows, columns)"
    Args = ValidateArgs

    def run(self, ctx: JobContext, step: StepRun, args: dict[str, Any], user: Any) -> dict[str, Any]:
        version = _version(args["dataset"], args["version"])
        columns = [c["name"] for c in version.schema]
        missing = [c for c in args["columns"] if c not in columns]
        if missing:
            raise StepFailed(f"{version} has no column {', '.join(missing)} ({', '.join(columns)})")
        if (version.row_count or 0) < args["min_rows"]:
            raise StepFailed(f"{version} has {version.row_count} rows; at least {args['min_rows']} are needed")
        ctx.log(f"{version}: {version.row_count} rows, columns {', '.join(columns)}")
        return {"dataset": version.dataset.name, "version": version.number, "rows": version.row_count or 0}


class TrainArgs(DatasetArgs):
    experiment = serializers.CharField(max_length=500)
    target = serializers.CharField(max_length=255)
    trainer = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)
    seed = serializers.IntegerField(min_value=0, required=False, default=0)


def _experiment(name: str, user: Any) -> Any:
    from experiments import services as tracking
    from experiments.models import Experiment, Permission
    from experiments.permissions import can

    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        return tracking.create_experiment(name, owner=user)
    if not can(user, experiment, Permission.EDIT):
        raise StepFailed(f"{getattr(user, 'username', 'nobody')} may not write to the experiment {name!r}")
    return experiment


class Train(DatasetStep):
    name = "train"
    label = "Train a model (any trainer)"
    Args = TrainArgs

    def start(self, step: StepRun, args: dict[str, Any], user: Any) -> Job:
        from experiments.training.services import start_training_job

        return start_training_job(
            _experiment(args["experiment"], user), dataset_version=_version(args["dataset"], args["version"]),
            target=args["target"], trainer=args["trainer"], params=args["params"], seed=args["seed"],
            run_name=f"{step.run} / {step.name}", requested_by=user,
            tags={"portal.pipeline": step.run.pipeline.name, "portal.pipeline_run": str(step.run.number)},
        )  # fmt: skip


class ScriptArgs(serializers.Serializer):
    experiment = serializers.CharField(max_length=500)
    path = serializers.CharField(max_length=255, help_text="a script under TRAINING_SCRIPT_DIRS")
    args = serializers.ListField(child=serializers.CharField(max_length=1000), required=False, default=list)
    memory_mb = serializers.IntegerField(min_value=64, max_value=65_536, required=False)


class Script(StepType):
    name = "script"
    label = "Run a training script"
    Args = ScriptArgs

    def resolve(self, args: dict[str, Any], run: PipelineRun) -> dict[str, Any]:
        from experiments.training.services import allowed_script

        found = allowed_script(args["path"])
        if found is None:
            raise StepFailed(f"no script {args['path']!r} under the allowed directories (TRAINING_SCRIPT_DIRS)")
        return {**args, "sha256": hashlib.sha256(found[0].read_bytes()).hexdigest()}  # a changed script reruns

    def start(self, step: StepRun, args: dict[str, Any], user: Any) -> Job:
        from experiments.training.services import start_script_job

        return start_script_job(
            _experiment(args["experiment"], user), requested_by=user, path=args["path"], args=args["args"],
            run_name=f"{step.run} / {step.name}", memory_mb=args.get("memory_mb"),
        )  # fmt: skip


class EvaluateArgs(DatasetArgs):
    candidate = serializers.CharField(max_length=1000, help_text="the challenger: runs:/<run_id>/model")
    target = serializers.CharField(max_length=255)
    champion = serializers.CharField(
        max_length=256, required=False, default="", help_text="a registered model: its version with `alias`, or newest"
    )
    alias = serializers.CharField(max_length=256, required=False, default="champion")
    min_improvement = serializers.FloatField(
        required=False, default=0.0, help_text="how much better than the champion the challenger must score"
    )
    min_score = serializers.FloatField(required=False, allow_null=True, default=None)


class Evaluate(DatasetStep):
    name = "evaluate"
    label = "Evaluate a model on a holdout against the champion"
    Args = EvaluateArgs

    def run(self, ctx: JobContext, step: StepRun, args: dict[str, Any], user: Any) -> dict[str, Any]:
        from deployments import rollouts
        from deployments.server import loader
        from registry.models import ModelVersion

        version = _version(args["dataset"], args["version"])
        candidate = loader.load(_storage(user, args["candidate"]))
        features, truth = rollouts.holdout(version, args["target"], candidate)
        metric, challenger = rollouts.score(rollouts.predict_all(candidate, features), truth)
        ctx.log(f"challenger {args['candidate']}: {metric} {challenger:.4f} on {version}")
        out: dict[str, Any] = {"metric": metric, "score": challenger, "dataset": version.dataset.name,
                               "version": version.number, "champion_score": None, "champion_version": None}  # fmt: skip
        if args["min_score"] is not None and challenger < args["min_score"]:
            raise StepFailed(f"the challenger's {metric} {challenger:.4f} is below the minimum {args['min_score']}")
        if args["champion"]:
            from registry.permissions import visible_models

            versions = ModelVersion.objects.filter(model__in=visible_models(user), model__name=args["champion"])
            champion = versions.filter(aliases__alias=args["alias"]).first() or versions.order_by("-version").first()
            if champion is not None:
                loaded = loader.load(champion.storage_location)
                features, truth = rollouts.holdout(version, args["target"], loaded)
                _, best = rollouts.score(rollouts.predict_all(loaded, features), truth)
                out.update(champion_score=best, champion_version=champion.version)
                ctx.log(f"champion {args['champion']} v{champion.version}: {metric} {best:.4f}")
                if challenger < best + args["min_improvement"]:
                    raise StepFailed(
                        f"the challenger's {metric} {challenger:.4f} does not beat the champion's "
                        f"(v{champion.version}) {best:.4f} by {args['min_improvement']}"
                    )
        return out


def _storage(user: Any, source: str) -> str:
    """Where a model source's files are, with the registry's checks (READ on its run, inside the store)."""
    from experiments.mlflow_api.common import MlflowError
    from registry.services import resolve_source

    try:
        return resolve_source(user, source).storage_location
    except MlflowError as exc:
        raise StepFailed(exc.message) from None


class RegisterArgs(serializers.Serializer):
    model = serializers.CharField(max_length=256, help_text="the registered model's name")
    source = serializers.CharField(max_length=1000, help_text="runs:/<run_id>/model")
    alias = serializers.CharField(max_length=256, required=False, default="", allow_blank=True)


class Register(StepType):
    name = "register"
    label = "Register a model version"
    cacheable = False  # each run that gets here registers its model
    Args = RegisterArgs

    def run(self, ctx: JobContext, step: StepRun, args: dict[str, Any], user: Any) -> dict[str, Any]:
        from experiments.mlflow_api.common import MlflowError
        from registry import services as registry

        try:
            version = registry.register_source(user, args["model"], args["source"])
            if args["alias"]:
                registry.set_alias(version.model, args["alias"], version, actor=user)
        except MlflowError as exc:
            raise StepFailed(exc.message) from None
        ctx.log(f"registered {args['source']} as {args['model']} v{version.version}")
        return {"model": args["model"], "version": version.version}


class DeployArgs(serializers.Serializer):
    deployment = serializers.CharField(max_length=100)
    version = serializers.CharField(
        max_length=64, required=False, default="", help_text="a version number or an alias; default: its selector"
    )


class Deploy(StepType):
    name = "deploy"
    label = "Deploy (the deployment's gates and strategy)"
    cacheable = False
    Args = DeployArgs

    def start(self, step: StepRun, args: dict[str, Any], user: Any) -> Job:
        from deployments.models import Deployment
        from deployments.services import DeploymentError, deploy
        from registry.models import Permission
        from registry.permissions import can

        deployment = Deployment.objects.select_related("registered_model").filter(name=args["deployment"]).first()
        if deployment is None:
            raise StepFailed(f"no deployment {args['deployment']!r}")
        if not can(user, deployment.registered_model, Permission.EDIT):  # what the API and the page require
            raise StepFailed(
                f"{getattr(user, 'username', 'nobody')} may not deploy {deployment.registered_model.name!r}"
            )
        try:
            rollout = deploy(deployment, str(args["version"]) or None, actor=user)
        except DeploymentError as exc:
            raise StepFailed(str(exc)) from None
        if rollout.job is None:
            raise StepFailed("the rollout has no job")
        return rollout.job

    def outputs(self, job: Job) -> dict[str, Any]:
        result = job.result or {}
        if result.get("status") != "succeeded":
            raise StepFailed(
                f"the rollout ended {result.get('status', 'without a status')}: {result.get('reason', '')}"
            )
        return super().outputs(job)


class FunctionArgs(serializers.Serializer):
    function = serializers.CharField(max_length=200, help_text="a dotted path listed in PIPELINE_FUNCTIONS")
    kwargs = serializers.DictField(required=False, default=dict)

    def validate_function(self, value: str) -> str:
        if value not in settings.PIPELINE_FUNCTIONS:
            raise serializers.ValidationError(
                f"not one of PIPELINE_FUNCTIONS ({', '.join(settings.PIPELINE_FUNCTIONS)})"
            )
        return value


class Function(StepType):
    name = "function"
    label = "Call a registered Python function"
    Args = FunctionArgs

    def run(self, ctx: JobContext, step: StepRun, args: dict[str, Any], user: Any) -> dict[str, Any]:
        function = import_string(args["function"])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # what it prints goes to the step's log, as in Airflow
            result = function(**args["kwargs"])
        if printed.getvalue().strip():
            ctx.log(printed.getvalue().rstrip())
        if result is None:
            return {}
        if not isinstance(result, dict):
            return {"value": result}
        return result


STEP_TYPES: dict[str, StepType] = {
    t.name: t() for t in (ProfileDataset, ValidateDataset, Train, Script, Evaluate, Register, Deploy, Function)
}
