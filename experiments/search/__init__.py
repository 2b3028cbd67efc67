"""Search runs and experiments: MLflow's filter and order_by syntax, with OR and parentheses added.

A filter such as `metrics.acc > 0.9 and (params.model = 'cnn' or tags."mlflow.user" LIKE 'a%')` is
parsed into a small AST (`parse_filter`), checked against what can be searched, and compiled into one
`Q`. Comparisons on metrics, params and tags are `EXISTS` subqueries on the run, so OR and nesting
compose without joins that would duplicate rows. AND binds tighter than OR; keywords ignore case.
Ordering by a metric, param or tag LEFT JOINs that key's row (one per run at most), which the
database hash-joins: an order of magnitude faster than a correlated subquery per run.

Where MLflow's own behaviour is the contract (what a missing key or a NaN matches, where runs without
a sort key go, the default orders, the error messages clients show), this module follows MLflow 3:
- a comparison on a key a run lacks is false, whatever the operator (`params.x != 'a'` needs `x`);
- NaN metrics are stored as 0 with `is_nan`: a NaN satisfies only `!=`, as in IEEE arithmetic;
- runs lacking an order_by key sort last in both directions (metrics: values, then NaN, then missing).

Two choices differ from MLflow on purpose. LIKE is case-sensitive and ILIKE is not on every database
(MLflow's SQLite LIKE ignores case), and a backslash escapes `%`, `_` and itself in LIKE patterns.
Page tokens are keyset cursors (the last row's sort values), not offsets, so deep pages stay fast and
rows created while a client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db.models import QuerySet, prefetch_related_objects

from experiments.models import Experiment, LifecycleStage, Run
from experiments.permissions import visible_experiments
from experiments.search.compile import _experiment_q, _run_q
from experiments.search.compiled import segment_rows
from experiments.search.grammar import (
    EXPERIMENTS,
    INT64_MAX,
    MAX_EXPERIMENT_IDS,
    BoolOp,
    Comparison,
    Node,
    SearchError,
    parse_filter,
    parse_with_schema,
)
from experiments.search.paging import Ordering, _page, experiment_ordering, queryset_rows, run_ordering

__all__ = [
    "BoolOp",
    "Comparison",
    "Node",
    "SearchError",
    "lifecycle_stages",
    "parse_filter",
    "runs_queryset",
    "search_experiments",
    "search_runs",
]


# Public API --------------------------------------------------------------------------------------

_VIEW_TYPES = {
    "ACTIVE_ONLY": (LifecycleStage.ACTIVE,),
    "DELETED_ONLY": (LifecycleStage.DELETED,),
    "ALL": (LifecycleStage.ACTIVE, LifecycleStage.DELETED),
}
_VIEW_TYPE_NUMBERS = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}  # the protobuf enum values


def lifecycle_stages(view_type: Any) -> tuple[str, ...]:
    name = str(view_type if view_type not in (None, "") else "ACTIVE_ONLY").upper()
    name = _VIEW_TYPE_NUMBERS.get(name, name)
    if name not in _VIEW_TYPES:
        raise SearchError(f"Invalid view type '{view_type}'. Valid values are ACTIVE_ONLY, DELETED_ONLY and ALL")
    return _VIEW_TYPES[name]


def _experiment_ids(experiment_ids: Any) -> list[int]:
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    if len(experiment_ids or []) > MAX_EXPERIMENT_IDS:  # SQLite allows 32766 parameters per query
        raise SearchError(f"Search at most {MAX_EXPERIMENT_IDS} experiment IDs at a time, got {len(experiment_ids)}")
    ids = []
    for value in experiment_ids or []:
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not 0 <= number <= INT64_MAX:
            raise SearchError(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.")
        ids.append(number)
    return ids


def _parse_runs_search(
    experiment_ids: Any, filter_string: str | None, order_by: Any, view_type: Any
) -> tuple[list[int], tuple[str, ...], Node | None, Ordering]:
    """The request's experiment ids, lifecycle stages, filter and order, checked in this order."""
    return (
        _experiment_ids(experiment_ids),
        lifecycle_stages(view_type),
        parse_filter(filter_string or ""),
        run_ordering(order_by),
    )


def _filtered_runs(
    user: Any, ids: list[int], stages: tuple[str, ...], ordering: Ordering, node: Node | None
) -> QuerySet[Run]:
    readable = visible_experiments(user, Experiment.objects.filter(pk__in=ids)).values("pk")
    qs = ordering.annotate(Run.objects.filter(experiment_id__in=readable, lifecycle_stage__in=stages))
    if node is not None:
        qs = qs.filter(_run_q(node, ordering.first_key))
    return qs


def runs_queryset(
    user: Any,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | tuple[str, ...] = (),
    view_type: str = "ACTIVE_ONLY",
) -> QuerySet[Run]:
    """The runs of `experiment_ids` that `user` may read, filtered and ordered; the caller pages it."""
    ids, stages, node, ordering = _parse_runs_search(experiment_ids, filter_string, order_by, view_type)
    return ordering.apply(_filtered_runs(user, ids, stages, ordering, node))


def search_runs(
    user: Any,
    *,
    experiment_ids: list[str],
    filter_string: str,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    view_type: str,
) -> tuple[list[Run], str | None]:
    """One page of runs (`entities.runs_json` turns it into the API's JSON), and the token of the
    next page (None on the last). A segment of the order read from its start runs SQL the ORM
    compiled for an earlier search of the same shape when there was one (`compiled`)."""
    ids, stages, node, ordering = _parse_runs_search(experiment_ids, filter_string, order_by, view_type)
    build = partial(_filtered_runs, user, ids, stages, ordering)
    return _page(segment_rows(user, ids, stages, node, ordering, build), ordering, max_results, page_token)


def search_experiments(
    user: Any,
    *,
    filter_string: str,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    view_type: str,
) -> tuple[list[Experiment], str | None]:
    """One page of the experiments `user` may read, with tags prefetched, and the next page's token."""
    stages = lifecycle_stages(view_type)
    node = parse_with_schema(filter_string, EXPERIMENTS)
    ordering = experiment_ordering(order_by)
    qs = visible_experiments(user, Experiment.objects.filter(lifecycle_stage__in=stages))
    if node is not None:
        qs = qs.filter(_experiment_q(node))
    experiments, token = _page(queryset_rows(ordering.annotate(qs), ordering), ordering, max_results, page_token)
    prefetch_related_objects(experiments, "tags")
    return experiments, token
