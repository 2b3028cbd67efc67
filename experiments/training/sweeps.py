"""Sweeps: a grid or random search over a trainer's parameters, one training job per trial.

The trials are fixed when the sweep is created (every point of the grid, or `n_trials` draws from the
space with the sweep's seed) and each is checked against the trainer's schema then, so a bad point is a
400 naming it rather than a failed job later. `advance_sweep` hands pending trials to workers while fewer
than `max_concurrency` are queued or running; it runs when the sweep is created, whenever one of its jobs
ends (the training job type's `on_finish` hook) and on beat, which repairs a hook lost with its process.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from accounts.services import record_audit
from datasets.models import DatasetVersion
from experiments.models import Experiment, Sweep, SweepStrategy, SweepTrial
from experiments.training import Trainer, validate_params
from experiments.training.services import check_training, start_training_job
from jobs.models import FINISHED_STATUSES, Job, JobStatus
from jobs.services import cancel_job
from mlops_portal.api import first_message

logger = logging.getLogger(__name__)
SWEEP_TAG = "portal.sweep_id"
# The held-out scores a sweep can rank by, per task, and which way is better.
METRICS = {
    "classification": {"test_accuracy": "max", "test_f1": "max", "test_auc": "max"},
    "regression": {"test_rmse": "min", "test_mae": "min", "test_r2": "max"},
}
MAX_VALUES = 100  # values listed for one parameter


def _axis(name: str, spec: Any, field: serializers.Field, strategy: str) -> list[Any] | tuple[float, float, bool]:
    """One parameter's values (a list) or its range (low, high, log scale)."""
    where = f"space.{name}"
    if isinstance(spec, dict) and set(spec) == {"values"}:
        spec = spec["values"]
    if isinstance(spec, list):
        if not 1 <= len(spec) <= MAX_VALUES:
            raise ValidationError({where: [f"list from 1 to {MAX_VALUES} values"]})
        return spec
    if not isinstance(spec, dict) or not {"min", "max"} <= set(spec) or set(spec) - {"min", "max", "log"}:
        raise ValidationError({where: ['a list of values, or {"min": a, "max": b} with an optional "log": true']})
    low, high, log = spec["min"], spec["max"], spec.get("log", False)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise ValidationError({where: ["min and max are numbers"]})
    if not isinstance(field, serializers.IntegerField | serializers.FloatField):
        raise ValidationError({where: ["a range needs a numeric parameter; list the values instead"]})
    if low > high or (log and low <= 0) or not isinstance(log, bool):
        raise ValidationError({where: ["min <= max, and min > 0 on a log scale"]})
    if strategy == SweepStrategy.GRID:
        raise ValidationError({where: ["a grid takes a list of values; draw from a range with the random strategy"]})
    return (float(low), float(high), log)


def _draw(axis: tuple[float, float, bool], field: serializers.Field, rng: random.Random) -> Any:
    low, high, log = axis
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    return round(value) if isinstance(field, serializers.IntegerField) else value


def expand_space(
    trainer: type[Trainer], base_params: dict[str, Any], space: Any, strategy: str, n_trials: int | None, seed: int
) -> list[dict[str, Any]]:
    """Every trial's full parameters, each checked against the trainer's schema; a ValidationError names
    the parameter (`space.dropout`) and the limit."""
    limit = settings.SWEEP_MAX_TRIALS
    if not isinstance(space, dict) or not space:
        raise ValidationError({"space": ["a JSON object: parameter name to a list of values or a range"]})
    fields = trainer.Params().fields
    unknown = sorted(set(space) - set(fields))
    if unknown:
        raise ValidationError({f"space.{unknown[0]}": [f"unknown parameter; {trainer.name} takes {', '.join(fields)}"]})
    axes = {name: _axis(name, spec, fields[name], strategy) for name, spec in space.items()}
    if strategy == SweepStrategy.GRID:
        size = math.prod(len(values) for values in axes.values())  # type: ignore[arg-type]
        if size > limit:
            raise ValidationError({"space": [f"the grid has {size} points; the limit is {limit} (SWEEP_MAX_TRIALS)"]})
        points = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]  # type: ignore[arg-type]
    else:
        if n_trials is None or not 1 <= n_trials <= limit:
            raise ValidationError({"n_trials": [f"a random sweep needs from 1 to {limit} trials (SWEEP_MAX_TRIALS)"]})
        rng = random.Random(seed)  # noqa: S311  (reproducible draws, not secrets)
        points = [
            {
                name: _draw(axis, fields[name], rng) if isinstance(axis, tuple) else rng.choice(axis)
                for name, axis in axes.items()
            }
            for _ in range(n_trials)
        ]
    trials = []
    for point in points:
        try:
            trials.append(validate_params(trainer, {**base_params, **point}))
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            name = next(iter(detail))
            where = f"space.{name}" if name in space else f"params.{name}"
            value = point.get(name, base_params.get(name))
            raise ValidationError({where: [f"{value!r}: {first_message(detail[name])}"]}) from None
    return trials


def create_sweep(
    experiment: Experiment,
    *,
    dataset_version: DatasetVersion,
    target: str,
    trainer: str,
    space: Any,
    strategy: str = SweepStrategy.GRID,
    n_trials: int | None = None,
    metric: str = "",
    base_params: dict[str, Any] | None = None,
    max_concurrency: int = 2,
    seed: int = 0,
    name: str = "",
    timeout_seconds: int | None = None,
    requested_by: Any,
) -> Sweep:
    """Check everything, store the sweep and all its trials, and start the first `max_concurrency`."""
    if strategy not in SweepStrategy.values:
        raise ValidationError({"strategy": [f"one of {', '.join(SweepStrategy.values)}"]})
    found, _ = check_training(dataset_version, target=target, trainer=trainer, params=base_params, seed=seed)
    metrics = METRICS[found.task]
    metric = metric or next(iter(metrics))
    if metric not in metrics:
        raise ValidationError({"metric": [f"a {found.task} sweep ranks by one of {', '.join(metrics)}"]})
    if not 1 <= max_concurrency <= settings.SWEEP_MAX_CONCURRENCY:
        raise ValidationError(
            {"max_concurrency": [f"from 1 to {settings.SWEEP_MAX_CONCURRENCY} (SWEEP_MAX_CONCURRENCY)"]}
        )
    trials = expand_space(found, base_params or {}, space, strategy, n_trials, seed)
    with transaction.atomic():
        sweep = Sweep.objects.create(
            name=(name or f"{found.name} on {dataset_version}")[:200], experiment=experiment,
            dataset_version=dataset_version, target=target, trainer=found.name, base_params=base_params or {},
            space=space, strategy=strategy, metric=metric, goal=metrics[metric], max_concurrency=max_concurrency,
            seed=seed, timeout_seconds=timeout_seconds,
            created_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        )  # fmt: skip
        SweepTrial.objects.bulk_create(
            SweepTrial(sweep=sweep, number=n, params=params) for n, params in enumerate(trials, start=1)
        )
        record_audit(requested_by, "sweep.create", sweep, {"trials": len(trials), "strategy": strategy})
        advance_sweep(sweep.pk)
    return sweep


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def advance_sweep(sweep_id: int) -> list[int]:
    """Hand pending trials to workers while fewer than `max_concurrency` are queued or running. Returns
    the trial numbers started. Safe to call concurrently: the sweep row is locked while deciding."""
    started: list[int] = []
    with transaction.atomic():
        related = Sweep.objects.select_related("experiment", "dataset_version", "created_by")
        sweep = related.select_for_update(of=("self",))  # created_by is a nullable join PostgreSQL will not lock
        sweep = sweep.filter(pk=sweep_id).first()
        if sweep is None or sweep.cancel_requested:
            return started
        active = sweep.trials.filter(job__status__in=ACTIVE).count()
        free = sweep.max_concurrency - active
        if free <= 0:
            return started
        for trial in sweep.trials.filter(job__isnull=True).order_by("number")[:free]:
            trial.job = start_training_job(
                sweep.experiment, dataset_version=sweep.dataset_version, target=sweep.target, trainer=sweep.trainer,
                params=trial.params, seed=sweep.seed, run_name=f"{sweep.name} #{trial.number}",
                requested_by=sweep.created_by, timeout_seconds=sweep.timeout_seconds,
                tags={SWEEP_TAG: str(sweep.pk), "portal.sweep_trial": str(trial.number)},
            )  # fmt: skip
            trial.save(update_fields=["job"])
            started.append(trial.number)
    return started


def after_training_job(job_id: int) -> None:
    """The training job type's on_finish hook: a trial ended, so its sweep may start the next one."""
    sweep_id = SweepTrial.objects.filter(job_id=job_id).values_list("sweep_id", flat=True).first()
    if sweep_id is not None:
        advance_sweep(sweep_id)


def advance_sweeps() -> int:
    """On beat: every sweep with pending trials and a free slot moves on. Returns trials started."""
    waiting = Sweep.objects.filter(cancel_requested=False, trials__job__isnull=True).values_list("pk", flat=True)
    started = 0
    for pk in set(waiting):
        try:
            started += len(advance_sweep(pk))
        except Exception:  # one sweep that cannot start (its trainer was removed...) must not stop the others
            logger.exception("advancing a sweep failed", extra={"sweep_id": pk})
    return started


def cancel_sweep(sweep: Sweep, *, actor: Any) -> Sweep:
    """No new trials start; queued trials are cancelled and running ones stop at their next batch."""
    with transaction.atomic():
        Sweep.objects.filter(pk=sweep.pk).update(cancel_requested=True)
        record_audit(actor, "sweep.cancel", sweep, {})
        for job in Job.objects.filter(pk__in=sweep.trials.values("job_id"), status__in=ACTIVE):
            cancel_job(job, actor=actor)
    sweep.refresh_from_db()
    return sweep


def sweep_counts(sweeps: Any) -> Any:
    """Annotate each sweep with its trial counts by state, in the one query."""
    return sweeps.annotate(
        n_trials=Count("trials"),
        n_done=Count("trials", filter=Q(trials__job__status__in=FINISHED_STATUSES)),
        n_active=Count("trials", filter=Q(trials__job__status__in=ACTIVE)),
        n_failed=Count("trials", filter=Q(trials__job__status__in=(JobStatus.FAILED, JobStatus.CANCELLED))),
    )


def sweep_state(sweep: Any) -> str:
    """running / cancelled / finished, from counts annotated by `sweep_counts`."""
    if sweep.n_active:
        return "running"
    if sweep.cancel_requested:
        return "cancelled"
    return "finished" if sweep.n_done == sweep.n_trials else "running"


def best_trial(sweep: Sweep, trials: list[SweepTrial]) -> SweepTrial | None:
    """The succeeded trial with the best score by the sweep's metric (the lowest number on a tie)."""
    scored = [(score, t) for t in trials if (score := trial_score(sweep, t)) is not None]
    if not scored:
        return None
    sign = -1.0 if sweep.goal == "max" else 1.0
    return min(scored, key=lambda pair: (sign * pair[0], pair[1].number))[1]


def trial_score(sweep: Sweep, trial: SweepTrial) -> float | None:
    """The trial's score by the sweep's metric, once its job succeeded."""
    if trial.job is None or trial.job.status != JobStatus.SUCCEEDED:
        return None
    value = (trial.job.result or {}).get(sweep.metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
