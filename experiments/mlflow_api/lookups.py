"""Fetch experiments and runs for a user, checking their per-experiment permission."""

from __future__ import annotations

from typing import Any

from experiments import permissions
from experiments.mlflow_api.common import MlflowError, invalid, not_found
from experiments.models import PERMISSION_RANK, Experiment, ExperimentPermission, LifecycleStage, Permission, Run
from mlops_portal import rawsql


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


def check(user: Any, experiment: Experiment, level: str, missing: str | None = None, *, grant: Any = ...) -> None:
    """Raise unless `user` holds `level`. Without READ, answer as if the object (`missing` names it)
    did not exist, so ids cannot be probed. `grant`: the user's grant, when the caller read it."""
    if grant is ...:
        current = permissions.level_for(user, experiment)
    else:
        current = permissions.level_with_grant(user, experiment, grant)
    if current == 0:
        raise not_found(missing or f"Could not find experiment with ID {experiment.pk}")
    if current < PERMISSION_RANK[level]:
        raise deny(user, level)


def experiment_for(user: Any, experiment_id: Any, level: str = Permission.READ) -> Experiment:
    pk = parse_experiment_id(experiment_id)
    experiment, grant = _experiment_with_grant(user, pk)
    if experiment is None and pk == 0:
        from experiments.services import ensure_default_experiment

        experiment, grant = ensure_default_experiment(), ...
    if experiment is None:
        raise not_found(f"Could not find experiment with ID {pk}")
    check(user, experiment, level, grant=grant)
    return experiment


def _experiment_with_grant(user: Any, pk: int) -> tuple[Experiment | None, Any]:
    """The experiment and the user's grant on it in one hand-written query (runs/create starts here)."""
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {rawsql.select_list(Experiment, 'e')}, g.level FROM {Experiment._meta.db_table} e"  # noqa: S608
            f" LEFT JOIN {ExperimentPermission._meta.db_table} g ON g.experiment_id = e.id AND g.user_id = %s"
            " WHERE e.id = %s",
            [getattr(user, "pk", None), pk],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    return rawsql.load(Experiment, row), row[-1]


def run_for(user: Any, run_id: Any, level: str = Permission.READ, *, prefetch: bool = False) -> Run:
    """The run, if `user` holds `level` on its experiment; with `prefetch`, ready for `run_json`."""
    if not run_id or not isinstance(run_id, str):
        raise invalid("Missing value for required parameter 'run_id'.")
    if prefetch:
        from experiments.entities import RUN_PREFETCH

        run = Run.objects.select_related("experiment").prefetch_related(*RUN_PREFETCH).filter(pk=run_id).first()
        grant: Any = ...
    else:
        run, grant = _run_with_grant(user, run_id)
    if run is None:
        raise not_found(f"Run with id={run_id} not found")
    check(user, run.experiment, level, missing=f"Run with id={run_id} not found", grant=grant)
    return run


def _run_with_grant(user: Any, run_id: str) -> tuple[Run | None, str | None]:
    """The run, its experiment and the user's grant on it in one hand-written query: every logging
    call starts here, and compiling the equivalent ORM queries costs more than running them."""
    grant_table = ExperimentPermission._meta.db_table
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {rawsql.select_list(Run, 'r')}, {rawsql.select_list(Experiment, 'e')}, g.level"  # noqa: S608
            f" FROM {Run._meta.db_table} r JOIN {Experiment._meta.db_table} e ON e.id = r.experiment_id"
            f" LEFT JOIN {grant_table} g ON g.experiment_id = r.experiment_id AND g.user_id = %s"
            " WHERE r.run_uuid = %s",
            [getattr(user, "pk", None), run_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    run = rawsql.load(Run, row)
    run.experiment = rawsql.load(Experiment, row, rawsql.width(Run))
    return run, row[-1]


class RunGuard:
    """The run lookup and its permission check as a CTE named `guard`, for a write statement that
    checks and writes in one round trip (the mlflow client's per-metric and per-param calls).

    The statement writes only from `guard` rows where `w_ok` (the user holds `level` and the run is
    active; `w_run`, `w_exp`: the run and its experiment) and returns the guard's row. The row is those
    three columns and nothing else: a write that was allowed needs nothing more, and only a refused
    one reads the run again (`resolve`), to raise the error `run_for` would have raised. The statement
    needs PostgreSQL (a data-modifying CTE); elsewhere `lookup` is `run_for`.
    """

    def __init__(self, user: Any, run_id: Any, level: str) -> None:
        if not run_id or not isinstance(run_id, str):
            raise invalid("Missing value for required parameter 'run_id'.")
        self.user, self.run_id, self.level = user, run_id, level
        allowed, allowed_params = permissions.sql_allows(user, level)
        self.cte = (
            "guard AS (SELECT r.run_uuid AS w_run, r.experiment_id AS w_exp,"  # noqa: S608
            f" (r.lifecycle_stage = %s AND ({allowed})) AS w_ok"
            f" FROM {Run._meta.db_table} r JOIN {Experiment._meta.db_table} e ON e.id = r.experiment_id"
            f" LEFT JOIN {ExperimentPermission._meta.db_table} g"
            " ON g.experiment_id = r.experiment_id AND g.user_id = %s"
            " WHERE r.run_uuid = %s)"
        )
        # For metric points, which have no foreign key to the run: the run stays locked against deletion
        # until they are committed (see experiments.models.Metric).
        self.locking_cte = self.cte[:-1] + " FOR KEY SHARE OF r)"
        self.params: list[Any] = [LifecycleStage.ACTIVE, *allowed_params, getattr(user, "pk", None), run_id]
        self.columns = 3  # what `SELECT guard.*` returns

    def lookup(self) -> Run:
        """The run by a query of its own, as `run_for` reads it (databases without the statement)."""
        return run_for(self.user, self.run_id, self.level)

    def resolve(self, row: Any) -> None:
        """Nothing if the statement's guard row (at the start of `row`) allowed the write; else the
        error `run_for` raises, from a lookup of its own (the refused path only)."""
        if row is not None and row[self.columns - 1]:
            return
        run = self.lookup()  # raises: missing, not allowed
        from experiments.services import require_active

        require_active(run)  # raises: deleted
        # The statement refused what Python allows (a grant changed in between): never written, so say so.
        raise MlflowError("the write was refused by the database's permission check; try again", "INTERNAL_ERROR")
