"""REST API of sweeps: start one, read its trials and best trial, cancel it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import RolePermission
from experiments.api.training import TrainingRequest, training_target
from experiments.models import Permission, Sweep, SweepStrategy
from experiments.permissions import can, visible_experiments
from experiments.training import sweeps
from mlops_portal.api import StandardPagination


class SweepRequest(TrainingRequest):
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    space = serializers.JSONField(help_text='{"param": [values] or {"min": a, "max": b, "log": false}}')
    strategy = serializers.ChoiceField(choices=SweepStrategy.choices, default=SweepStrategy.GRID)
    n_trials = serializers.IntegerField(required=False, min_value=1, help_text="random strategy only")
    metric = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    max_concurrency = serializers.IntegerField(min_value=1, default=2)


def trial_json(sweep: Sweep, trial: Any) -> dict[str, Any]:
    job = trial.job
    return {
        "number": trial.number,
        "params": {k: trial.params.get(k) for k in sweep.space},
        "job": job.pk if job else None,
        "status": job.status if job else "pending",
        "score": sweeps.trial_score(sweep, trial),
        "run_id": (job.result or {}).get("run_id") if job else None,
        "model": (job.result or {}).get("model") if job else None,
    }


def sweep_json(sweep: Any, *, with_trials: bool) -> dict[str, Any]:
    out = {
        "id": sweep.pk, "name": sweep.name, "experiment": sweep.experiment.name, "trainer": sweep.trainer,
        "dataset": sweep.dataset_version.dataset.name, "version": sweep.dataset_version.number,
        "target": sweep.target, "strategy": sweep.strategy, "space": sweep.space, "base_params": sweep.base_params,
        "metric": sweep.metric, "goal": sweep.goal, "max_concurrency": sweep.max_concurrency, "seed": sweep.seed,
        "state": sweeps.sweep_state(sweep), "trials_total": sweep.n_trials, "trials_done": sweep.n_done,
        "trials_failed": sweep.n_failed, "created_at": sweep.created_at, "url": f"/experiments/sweeps/{sweep.pk}/",
    }  # fmt: skip
    if with_trials:
        trials = list(sweep.trials.select_related("job").defer("job__log", "job__params"))
        best = sweeps.best_trial(sweep, trials)
        out["best"] = trial_json(sweep, best) if best else None
        out["trials"] = [trial_json(sweep, t) for t in trials]
    return out


def visible_sweeps(user: Any) -> Any:
    base = Sweep.objects.filter(experiment__in=visible_experiments(user))
    related = base.select_related("experiment", "dataset_version__dataset")
    return sweeps.sweep_counts(related).order_by("-created_at", "-id")  # GROUP BY ignores Meta.ordering


@extend_schema(methods=["GET"], operation_id="sweeps_list", responses={200: OpenApiTypes.OBJECT})
@extend_schema(
    methods=["POST"],
    request=SweepRequest,
    responses={202: inline_serializer("SweepCreated", {"id": serializers.IntegerField()})},
)
@api_view(["GET", "POST"])
@permission_classes([RolePermission])
def sweep_list(request: Request) -> Response:
    """GET: the sweeps of experiments you may read, newest first, paged. POST: start a sweep (EDIT needed)."""
    if request.method == "GET":
        paginator = StandardPagination()
        page = paginator.paginate_queryset(visible_sweeps(request.user), request)
        return paginator.get_paginated_response([sweep_json(s, with_trials=False) for s in page or []])
    data = SweepRequest(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    experiment, version = training_target(request, values)
    sweep = sweeps.create_sweep(
        experiment, dataset_version=version, target=values["target"], trainer=values["trainer"],
        space=values["space"], strategy=values["strategy"], n_trials=values.get("n_trials"),
        metric=values["metric"], base_params=values["params"], max_concurrency=values["max_concurrency"],
        seed=values["seed"], name=values["name"] or values["run_name"], timeout_seconds=values.get("timeout_seconds"),
        requested_by=request.user,
    )  # fmt: skip
    return Response(sweep_json(visible_sweeps(request.user).get(pk=sweep.pk), with_trials=True),
                    status=status.HTTP_202_ACCEPTED)  # fmt: skip


def _sweep(request: Request, sweep_id: int) -> Any:
    sweep = visible_sweeps(request.user).filter(pk=sweep_id).first()
    if sweep is None:
        raise exceptions.NotFound(f"no sweep {sweep_id}")
    return sweep


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([RolePermission])
def sweep_detail(request: Request, sweep_id: int) -> Response:
    """A sweep with every trial (its parameters, job, state and score) and the best trial so far."""
    return Response(sweep_json(_sweep(request, sweep_id), with_trials=True))


@extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([RolePermission])
def sweep_cancel(request: Request, sweep_id: int) -> Response:
    """Start no more trials and cancel those queued or running (EDIT on the experiment)."""
    sweep = _sweep(request, sweep_id)
    if not can(request.user, sweep.experiment, Permission.EDIT):
        raise exceptions.PermissionDenied(f"You need EDIT on the experiment {sweep.experiment.name!r}.")
    sweeps.cancel_sweep(sweep, actor=request.user)
    return Response(sweep_json(_sweep(request, sweep_id), with_trials=True))
