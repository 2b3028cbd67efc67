"""Drift: per feature, the live inputs of a window against the training data, and prediction drift.

The reference is the profile of the dataset version the serving model was trained on (its source run's
inputs, linked by digest or name as on the run page), or the deployment's holdout when the run logged no
dataset. Live values come from the prediction log's sampled request bodies in the window. Each numeric
feature gets PSI and KS (the reference histogram's bins, extended to the live range, as the dataset diff
does); each categorical one PSI and a chi-square test over the reference's top values plus "(other)".
`prediction` compares the window's outputs with the serving version's first day of outputs.

`compute_drift()` runs on beat (`monitoring.drift`) for the window ending at the last quarter hour.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets.diff import categorical_shift, numeric_shift, severity
from datasets.models import DatasetProfile, DatasetVersion, ProfileStatus
from deployments.models import Deployment, DeploymentRevision, PredictionLog, RevisionState
from experiments.lineage import versions_for_inputs
from monitoring.models import DriftResult
from monitoring.rollups import epoch_minute, prediction_rows

MAX_WINDOW_ROWS = 5_000  # request bodies read per window (each up to MODEL_SERVER_LOG_MAX_BODY_BYTES)
MIN_VALUES = 50  # fewer live values than this in a window: not judged
DRIFT_BINS = 10  # PSI over few live values is biased upwards by about (bins - 1) / n: keep the bins coarse
PREDICTION = "prediction"
logger = logging.getLogger(__name__)


@dataclass
class Reference:
    version: DatasetVersion
    features: list[dict[str, Any]]  # profile columns that are model inputs, in order

    @property
    def label(self) -> str:
        return f"{self.version.dataset.name} v{self.version.number}"


def serving_revision(deployment: Deployment) -> DeploymentRevision | None:
    return (
        deployment.revisions.filter(state=RevisionState.ACTIVE)
        .select_related("model_version__run")
        .order_by("-traffic_weight", "id")
        .first()
    )


def reference_for(deployment: Deployment, revision: DeploymentRevision | None) -> Reference | None:
    """The training dataset version's profile (the holdout's as a fallback), if it has one ready."""
    candidates: list[DatasetVersion] = []
    run = revision.model_version.run if revision is not None else None
    if run is not None:
        inputs = list(run.inputs.all())
        training = [i for i in inputs if any(t.get("value") == "training" for t in i.tags if isinstance(t, dict))]
        linked = versions_for_inputs(training or inputs)
        candidates += [v for i in training or inputs for v in linked.get(i.pk, [])]
    if deployment.holdout_dataset_version_id:
        candidates.append(deployment.holdout_dataset_version)
    for version in candidates:
        profile = DatasetProfile.objects.filter(version=version, status=ProfileStatus.READY).first()
        if profile is not None and profile.data:
            label = deployment.target_column
            features = [c for c in profile.data.get("columns", []) if c["name"] != label]
            return Reference(version, features)
    return None


def live_columns(bodies: list[Any], names: list[str]) -> dict[str, list[Any]]:
    """Column values out of request bodies in any accepted protocol shape; positional rows map onto
    `names` (the reference's input columns, in order)."""
    columns: dict[str, list[Any]] = {}

    def add_row(row: Any) -> None:
        if isinstance(row, dict):
            for key, value in row.items():
                columns.setdefault(str(key), []).append(value)
        elif isinstance(row, list):
            for name, value in zip(names, row, strict=False):
                columns.setdefault(name, []).append(value)

    for body in bodies:
        if not isinstance(body, dict):
            continue
        if isinstance(body.get("instances"), list):
            for row in body["instances"]:
                add_row(row)
        elif isinstance(body.get("dataframe_records"), list):
            for row in body["dataframe_records"]:
                add_row(row)
        elif isinstance(body.get("dataframe_split"), dict):
            split = body["dataframe_split"]
            cols = [str(c) for c in split.get("columns") or names]
            for row in split.get("data") or []:
                if isinstance(row, list):
                    add_row(dict(zip(cols, row, strict=False)))
        elif isinstance(body.get("inputs"), dict):
            for key, values in body["inputs"].items():
                columns.setdefault(str(key), []).extend(values if isinstance(values, list) else [values])
        elif isinstance(body.get("inputs"), list):
            for row in body["inputs"]:
                add_row(row)
    return columns


def _finite(values: list[Any]) -> np.ndarray:
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    array = np.asarray(numbers, dtype=np.float64)
    return array[np.isfinite(array)]


def numeric_profile(values: list[Any], edges: list[float]) -> dict[str, Any] | None:
    """Live values as a profile column with a histogram on the reference's bin width."""
    array = _finite(values)
    if not len(array):
        return None
    width = (edges[-1] - edges[0]) / max(len(edges) - 1, 1) or 1.0
    # Values far outside the reference land in the outermost bins: a 1e308 must not ask for infinite bins.
    array = np.clip(array, edges[0] - 1000 * width, edges[-1] + 1000 * width)
    low = min(edges[0], float(array.min()))
    high = max(edges[-1], float(array.max()))
    start = edges[0] - width * math.ceil((edges[0] - low) / width)
    bins = max(1, min(10_000, math.ceil((high - start) / width)))
    live_edges = [start + width * i for i in range(bins + 1)]
    if live_edges[-1] < high:
        live_edges.append(high)
    counts, _ = np.histogram(array, bins=live_edges)
    return {"histogram": {"edges": live_edges, "counts": counts.tolist()}, "non_null": len(array)}


def categorical_profile(values: list[Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for value in values:
        if value is not None:
            counts[str(value)] = counts.get(str(value), 0) + 1
    top = [{"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"top": top, "top_exact": True, "non_null": sum(counts.values())}


def chi_square(shift: dict[str, Any], n: int) -> tuple[float | None, float | None]:
    """Chi-square of the live counts against the reference proportions (buckets with an expectation)."""
    from scipy import stats

    distribution = shift["distribution"]
    expected = np.asarray(distribution["a"], dtype=np.float64) * n
    observed = np.asarray(distribution["b"], dtype=np.float64) * n
    keep = expected > 0
    if keep.sum() < 2:
        return None, None
    observed, expected = observed[keep], expected[keep]
    expected = expected * observed.sum() / expected.sum()
    statistic, p_value = stats.chisquare(observed, expected)
    return float(statistic), float(p_value)


def coarsen(histogram: dict[str, Any], bins: int = DRIFT_BINS) -> dict[str, Any]:
    """The histogram with adjacent bins merged until at most `bins` remain (the edges stay edges)."""
    edges, counts = histogram["edges"], histogram["counts"]
    step = max(1, math.ceil(len(counts) / bins))
    if step == 1:
        return histogram
    merged = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
    kept = [edges[i] for i in range(0, len(counts), step)] + [edges[-1]]
    return {"edges": kept, "counts": merged}


def feature_drift(reference: dict[str, Any], values: list[Any]) -> dict[str, Any] | None:
    """PSI (and KS or chi-square) of one feature's live values against its reference profile column."""
    if reference["kind"] == "numeric" and (reference.get("histogram") or {}).get("edges"):
        reference = {**reference, "histogram": coarsen(reference["histogram"])}
        live = numeric_profile(values, reference["histogram"]["edges"])
        if live is None or live["non_null"] < MIN_VALUES:
            return None
        shift = numeric_shift(reference, live)
        return shift and {"kind": "numeric", "n": live["non_null"], "psi": shift["psi"], "ks": shift["ks"]}
    if reference["kind"] == "categorical":
        live = categorical_profile(values)
        if live["non_null"] < MIN_VALUES:
            return None
        shift = categorical_shift(reference, live)
        if shift is None:
            return None
        chi2, p_value = chi_square(shift, live["non_null"])
        return {"kind": "categorical", "n": live["non_null"], "psi": shift["psi"], "chi2": chi2, "p_value": p_value}
    return None


def _output_values(outputs: list[Any]) -> list[float]:
    values: list[float] = []
    for output in outputs:
        for row in prediction_rows(output):
            first = row[0] if isinstance(row, list) and row else row
            if isinstance(first, int | float) and not isinstance(first, bool) and math.isfinite(first):
                values.append(float(first))
    return values


def prediction_drift(revision: DeploymentRevision, outputs: list[Any]) -> dict[str, Any] | None:
    """The window's predictions against the revision's first day of predictions."""
    live = _output_values(outputs)
    first = PredictionLog.objects.filter(revision=revision, status=200).order_by("time").values_list("time", flat=True)
    start = first.first()
    if start is None or len(live) < MIN_VALUES:
        return None
    baseline_outputs = (
        PredictionLog.objects.filter(revision=revision, status=200, time__lt=start + timedelta(days=1))
        .exclude(outputs=None)
        .order_by("time")
        .values_list("outputs", flat=True)[:MAX_WINDOW_ROWS]
    )
    baseline = np.asarray(_output_values(list(baseline_outputs)), dtype=np.float64)
    if len(baseline) < MIN_VALUES:
        return None
    counts, edges = np.histogram(baseline, bins=DRIFT_BINS)
    reference = {"kind": "numeric", "histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}
    result = feature_drift(reference, live)
    return result and {**result, "kind": PREDICTION}


def window_end_for(now: datetime) -> datetime:
    step = settings.DRIFT_INTERVAL_SECONDS // 60 or 1
    return now.replace(minute=now.minute - now.minute % step, second=0, microsecond=0)


def compute_drift(deployment: Deployment, end: datetime, minutes: int | None = None) -> list[DriftResult]:
    """Drift of every feature (and the predictions) in the window ending at `end`; stored and returned.
    Nothing is stored when the window has too little sampled traffic or no reference."""
    minutes = minutes or settings.DRIFT_WINDOW_MINUTES
    start = end - timedelta(minutes=minutes)
    revision = serving_revision(deployment)
    if revision is None:
        return []
    rows = list(
        PredictionLog.objects.filter(deployment=deployment, time__gte=start, time__lt=end, status=200)
        .order_by("-time")
        .values_list("inputs", "outputs")[:MAX_WINDOW_ROWS]
    )
    results: list[DriftResult] = []
    reference = reference_for(deployment, revision)
    if reference is not None:
        names = [c["name"] for c in reference.features]
        columns = live_columns([body for body, _ in rows if body is not None], names)
        for column in reference.features:
            found = feature_drift(column, columns.get(column["name"], []))
            if found is not None:
                results.append(_result(deployment, end, minutes, column["name"], found, reference.label))
    found = prediction_drift(revision, [out for _, out in rows if out is not None])
    if found is not None:
        label = f"v{revision.model_version.version}'s first day"
        results.append(_result(deployment, end, minutes, PREDICTION, found, label))
    if results:
        try:
            with transaction.atomic():
                DriftResult.objects.filter(deployment=deployment, window_end=end).delete()
                DriftResult.objects.bulk_create(results)
        except IntegrityError:  # another beat computed the same window meanwhile
            pass
    return results


def _result(deployment: Deployment, end: datetime, minutes: int, feature: str, found: dict[str, Any],
            reference: str) -> DriftResult:  # fmt: skip
    return DriftResult(
        deployment=deployment, window_end=end, window_epoch_minute=epoch_minute(end), window_minutes=minutes,
        feature=feature[:255], kind=found["kind"],
        n=found["n"], psi=found.get("psi"), ks=found.get("ks"), chi2=found.get("chi2"), p_value=found.get("p_value"),
        severity=severity(found.get("psi")), reference=reference[:255],
    )  # fmt: skip


def compute_all(now: datetime | None = None) -> int:
    """The beat task: the latest window of every deployment that served in it. Returns results stored."""
    end = window_end_for(now or timezone.now())
    start = end - timedelta(minutes=settings.DRIFT_WINDOW_MINUTES)
    active = PredictionLog.objects.filter(time__gte=start, time__lt=end).values_list("deployment_id", flat=True)
    stored = 0
    for deployment in Deployment.objects.filter(pk__in=active.distinct()).select_related("holdout_dataset_version"):
        try:
            stored += len(compute_drift(deployment, end))
        except Exception:  # one deployment's odd data must not stop drift for the others
            logger.exception("drift of deployment %s failed", deployment.name)
    return stored
