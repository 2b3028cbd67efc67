"""Read-side helpers for tracking: sampled metric histories, and what the dashboard pages read."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.db.models import Case, Count, F, FloatField, Max, Min, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from experiments.models import (
    Experiment,
    ExperimentKey,
    LatestMetric,
    LifecycleStage,
    Metric,
    MetricBucket,
    Param,
    Run,
    RunTag,
)


def sampled_history(
    run_id: str, key: str, max_results: int, start_step: int | None = None, end_step: int | None = None
) -> list[Metric]:
    """At most `max_results` steps of a metric, spread evenly over its distinct steps (MLflow's
    get-history-bulk-interval): the first and last step always included, every point of a chosen step."""
    qs = Metric.objects.filter(run_id=run_id, key=key)
    if start_step is not None:
        qs = qs.filter(step__gte=start_step)
    if end_step is not None:
        qs = qs.filter(step__lte=end_step)
    span = qs.aggregate(lo=Min("step"), hi=Max("step"), n=Count("step", distinct=True))
    if span["n"] and span["n"] > max_results:
        steps: Sequence[int]
        if span["hi"] - span["lo"] + 1 == span["n"]:
            # Contiguous steps (the usual 0, 1, 2, ...): pick them arithmetically instead of loading them all.
            steps = range(span["lo"], span["hi"] + 1)
        else:
            steps = list(qs.order_by("step").values_list("step", flat=True).distinct())
        if max_results == 1:
            chosen = {steps[0]}
        else:
            last = len(steps) - 1
            chosen = {steps[round(i * last / (max_results - 1))] for i in range(max_results)}
        qs = qs.filter(step__in=chosen)
    return list(qs.order_by("step", "timestamp").only("run_id", "key", "value", "is_nan", "timestamp", "step"))


# Dashboard read helpers --------------------------------------------------------------------------


def experiment_list(user: Any, *, search: str = "", deleted: bool = False) -> QuerySet[Experiment]:
    """The experiments `user` may read, newest activity first, each with its active run count and
    its runs' latest start and end times.

    The counts are correlated subqueries rather than a GROUP BY over the join: the database then
    evaluates them only for the page of rows a paginator asks for, not for every run of every
    experiment (the run_search_idx index answers each one).
    """
    from experiments.permissions import visible_experiments

    stage = LifecycleStage.DELETED if deleted else LifecycleStage.ACTIVE
    qs = visible_experiments(user, Experiment.objects.filter(lifecycle_stage=stage).select_related("owner"))
    if search:
        qs = qs.filter(name__icontains=search)
    runs = Run.objects.filter(experiment=OuterRef("pk"), lifecycle_stage=stage).order_by().values("experiment")
    return qs.annotate(
        run_count=Coalesce(Subquery(runs.annotate(n=Count("*")).values("n")), 0),
        last_run_start=Subquery(runs.annotate(t=Max("start_time")).values("t")),
        last_run_end=Subquery(runs.annotate(t=Max("end_time")).values("t")),
    ).order_by("-last_update_time", "-id")


def experiment_keys(experiment_id: int) -> dict[str, list[str]]:
    """The param, metric and tag keys logged by any run of an experiment (one query, on ExperimentKey).

    MLflow's own system tags (`mlflow.*`) are left out: the pages show them as run facts instead.
    """
    keys: dict[str, list[str]] = {"params": [], "metrics": [], "tags": []}
    rows = ExperimentKey.objects.filter(experiment_id=experiment_id).order_by("key").values_list("kind", "key")
    for kind, key in rows:
        if kind == ExperimentKey.Kind.TAG and key.startswith("mlflow."):
            continue
        keys[kind + "s"].append(key)
    return keys


@dataclass
class RunValues:
    """The chosen params, latest metrics and tags of one run, for a table row."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def run_values(run_ids: list[str], *, params: list[str], metrics: list[str], tags: list[str]) -> dict[str, RunValues]:
    """The given keys' values for the given runs: one query per kind (none for a kind with no keys),
    whatever the number of runs. NaN metrics come back as float("nan")."""
    values = {run_id: RunValues() for run_id in run_ids}
    if not run_ids:
        return values
    if params:
        for run_id, key, value in Param.objects.filter(run_id__in=run_ids, key__in=params).values_list(
            "run_id", "key", "value"
        ):
            values[run_id].params[key] = value
    if metrics:
        for run_id, key, value, is_nan in LatestMetric.objects.filter(run_id__in=run_ids, key__in=metrics).values_list(
            "run_id", "key", "value", "is_nan"
        ):
            values[run_id].metrics[key] = math.nan if is_nan else value
    if tags:
        for run_id, key, value in RunTag.objects.filter(run_id__in=run_ids, key__in=tags).values_list(
            "run_id", "key", "value"
        ):
            values[run_id].tags[key] = value
    return values


@dataclass
class MetricSeries:
    """One metric's full history, ordered by x, with NaN points as float("nan")."""

    xs: list[int]
    ys: list[float]

    @property
    def non_finite(self) -> int:
        if math.isfinite(sum(self.ys)):  # one pass in C; NaN or ±inf anywhere makes the sum non-finite
            return 0
        return sum(1 for y in self.ys if not math.isfinite(y))


def metric_series(run_id: str, key: str, *, x: str = "step", has_nan: bool = True) -> MetricSeries:
    """Every point of a metric as plain numbers, x being "step" or "timestamp".

    One values_list query (tuples, no model instances) that the metric_point_unique index (run, key,
    step, timestamp, value, is_nan) covers, order included. When the caller knows the series has no
    NaN (`has_nan=False`), the values are read as stored; otherwise the database turns NaN points
    into NULL (a CASE that costs SQLite a third more time per row), so the flag needs no per-row
    conversion in Python. The columns are split with list comprehensions: `zip(*rows)` over a
    million tuples takes seconds.
    """
    order = ("step", "timestamp") if x == "step" else ("timestamp", "step")
    qs = Metric.objects.filter(run_id=run_id, key=key).order_by(*order)
    if has_nan:
        y = Case(When(is_nan=True, then=Value(None)), default=F("value"), output_field=FloatField())
        rows = list(qs.values_list(x, y))
    else:
        rows = list(qs.values_list(x, "value"))
    xs = [row[0] for row in rows]
    ys = [row[1] for row in rows]
    if has_nan and None in ys:
        ys = [math.nan if v is None else v for v in ys]
    return MetricSeries(xs, ys)


@dataclass
class DownsampledSeries:
    """A metric's history cut to a chart's worth of points, and what was left out."""

    xs: list[int]
    ys: list[float]
    total_points: int
    non_finite_points: int


# Below this many points a fresh read is cheaper than a cache round trip.
SERIES_CACHE_MIN_POINTS = 20_000
SERIES_CACHE_SECONDS = 24 * 3600


def bucketed_series(run_id: str, key: str, points: int) -> DownsampledSeries | None:
    """A long history by step, from its MetricBucket summaries (about one row per 1,024 steps): each
    group of neighbouring buckets gives its lowest and highest finite point, in step order, so spikes
    survive (min/max downsampling). None when the series is short enough to read whole (the caller
    then draws it exactly, or with LTTB)."""
    rows = list(
        MetricBucket.objects.filter(run_id=run_id, key=key)
        .order_by("bucket")
        .values_list("points", "non_finite", "min_value", "min_step", "max_value", "max_step")
    )
    total = sum(r[0] for r in rows)
    if total <= LONG_SERIES_POINTS:
        return None
    per_group = max(1, math.ceil(len(rows) / max(1, points // 2)))
    xs: list[int] = []
    ys: list[float] = []
    for start in range(0, len(rows), per_group):
        finite = [r for r in rows[start : start + per_group] if r[2] is not None]
        if not finite:
            continue
        low = min(finite, key=lambda r: (r[2], r[3]))
        high = max(finite, key=lambda r: (r[4], -r[5]))
        for step, value in sorted({(low[3], low[2]), (high[5], high[4])}):
            xs.append(step)
            ys.append(value)
    return DownsampledSeries(xs, ys, total, sum(r[1] for r in rows))


# Longer series are charted from MetricBucket summaries rather than read point by point.
LONG_SERIES_POINTS = 20_000


def downsampled_series(run_id: str, key: str, *, x: str = "step", points: int = 1000) -> DownsampledSeries | None:
    """The history of a metric downsampled with LTTB to `points`, or None if the run never logged it.

    Reading a million points costs about a second of database driver time, so long series are kept
    in the cache, keyed by the series' version: its point count and its newest step and timestamp.
    Points are only ever added (identical ones are stored once), so any new point, backfilled or
    not, changes the count and a stale entry is never served. The version costs one aggregate over
    the covering index (about 0.1 s for a million points), which also says whether the read must
    map NaN points.
    """
    from django.core.cache import cache

    from experiments.downsample import lttb

    if x == "step":
        summary = bucketed_series(run_id, key, points)
        if summary is not None:
            return summary
    version = Metric.objects.filter(run_id=run_id, key=key).aggregate(
        n=Count("id"), nan=Count("id", filter=Q(is_nan=True)), last_step=Max("step"), last_time=Max("timestamp")
    )
    total = version["n"]
    if not total:
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    cache_key = (
        f"tracking:series:v1:{run_id}:{digest}:{x}:{points}:{total}:{version['last_step']}:{version['last_time']}"
    )
    if total >= SERIES_CACHE_MIN_POINTS:
        cached = cache.get(cache_key)
        if cached is not None:
            return cast(DownsampledSeries, cached)
    series = metric_series(run_id, key, x=x, has_nan=bool(version["nan"]))
    xs, ys = lttb(series.xs, series.ys, points)
    result = DownsampledSeries(xs, ys, len(series.xs), series.non_finite)
    if total >= SERIES_CACHE_MIN_POINTS:
        cache.set(cache_key, result, SERIES_CACHE_SECONDS)
    return result
