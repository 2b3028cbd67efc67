"""Fetch experiments and runs for a user, checking their per-experiment permission."""

from __future__ import annotations

from typing import Any

from experiments import permissions
from experiments.mlflow_api.common import MlflowError, invalid, not_found
from experiments.models import PERMISSION_RANK, Experiment, Permission, Run


def parse_experiment_id(value: Any, path: str = "experiment_id") -> int:
    if value is None or value == "":
        raise invalid(f"Missing value for required parameter '{path}'.")
    try:
        number = int(str(value))
    except ValueError:
        raise invalid(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.") from None
    if number < 0 or number >= 2**63:
        raise invalid(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.")
    return number


def deny(user: Any, level: str) -> MlflowError:
    name = user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"
    return MlflowError(f"Permission denied: user '{name}' needs {level} on this experiment.", "PERMISSION_DENIED")


def check(user: Any, experiment: Experiment, level: str, missing: str | None = None) -> None:
    """Raise unless `user` holds `level`. Without READ, answer as if the object (`missing` names it)
    did not exist, so ids cannot be probed."""
    current = permissions.level_for(user, experiment)
    if current == 0:
        raise not_found(missing or f"Could not find experiment with ID {experiment.pk}")
    if current < PERMISSION_RANK[level]:
        raise deny(user, level)


def experiment_for(user: Any, experiment_id: Any, level: str = Permission.READ) -> Experiment:
    pk = parse_experiment_id(experiment_id)
    experiment = Experiment.objects.filter(pk=pk).first()
    if experiment is None and pk == 0:
        from experiments.services import ensure_default_experiment

        experiment = ensure_default_experiment()
    if experiment is None:
        raise not_found(f"Could not find experiment with ID {pk}")
    check(user, experiment, level)
    return experiment


def run_for(user: Any, run_id: Any, level: str = Permission.READ, *, prefetch: bool = False) -> Run:
    """The run, if `user` holds `level` on its experiment; with `prefetch`, ready for `run_json`."""
    if not run_id or not isinstance(run_id, str):
        raise invalid("Missing value for required parameter 'run_id'.")
    runs = Run.objects.select_related("experiment")
    if prefetch:
        from experiments.entities import RUN_PREFETCH

        runs = runs.prefetch_related(*RUN_PREFETCH)
    run = runs.filter(pk=run_id).first()
    if run is None:
        raise not_found(f"Run with id={run_id} not found")
    check(user, run.experiment, level, missing=f"Run with id={run_id} not found")
    return run
