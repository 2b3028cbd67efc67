"""What changed between two versions of a dataset, from their profiles.

`diff_versions(a, b)` compares version `a` (the base, usually the older) with `b`:

- schema: added, removed and retyped columns (from the versions' recorded schemas);
- rows: the row-count change; for directory datasets, the files added, removed and changed;
- per column, the distribution shift, from the two profiles:
  - PSI, the population stability index, sum((b - a) * ln(b / a)) over bucket proportions, with
    proportions under EPSILON raised to it so an empty bucket does not make it infinite. Numeric columns
    use `a`'s histogram bins, extended with bins of the same width to cover `b`'s range (beyond
    MAX_EXTRA_BINS on a side, one wide bin takes the rest); `b`'s histogram is spread over them assuming
    values are uniform within each of its own bins. Text and boolean columns use the union of both top
    values plus an "(other)" bucket;
  - KS, the two-sample Kolmogorov-Smirnov statistic for numeric columns: the largest gap between the
    two empirical CDFs, each taken from its histogram (linear within a bin) at every bin edge of both.
    Both are therefore estimates at histogram resolution, not computed from the raw values;
  - a severity from the PSI: under 0.1 none, 0.1 to 0.25 moderate, above 0.25 major.

A version without a stored profile is profiled on the spot when it is at most SYNC_PROFILE_MAX_BYTES;
otherwise the diff says its profile is pending and leaves the distribution shift out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datasets.models import DatasetFormat, DatasetProfile, DatasetVersion, ProfileStatus
from datasets.profiler import ProfileError

EPSILON = 1e-4
MAX_EXTRA_BINS = 30
SYNC_PROFILE_MAX_BYTES = 20 * 1024 * 1024
OTHER = "(other)"
MODERATE, MAJOR = 0.1, 0.25

METHOD = {
    "psi": "Population stability index over the base version's histogram bins (extended to cover the other "
    "version's range) for numbers, over the union of both versions' top values plus '(other)' for text; "
    f"empty buckets count as {EPSILON}. Under 0.1: no shift; 0.1 to 0.25: moderate; above 0.25: major.",
    "ks": "Two-sample Kolmogorov-Smirnov statistic from the two histograms' CDFs (linear within a bin) at every "
    "bin edge of both: an estimate at histogram resolution.",
}


def severity(psi: float | None) -> str:
    if psi is None:
        return "n/a"
    if psi > MAJOR:
        return "major"
    if psi >= MODERATE:
        return "moderate"
    return "none"


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI between two proportion vectors over the same buckets (each summing to 1, or all zero)."""
    a = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    b = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((b - a) * np.log(b / a)))


def _cdf(edges: Sequence[float], counts: Sequence[int], at: np.ndarray) -> np.ndarray:
    """The histogram's cumulative count at `at`, linear within each bin, 0 before and total after."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(counts, dtype=np.float64))])
    return np.interp(at, np.asarray(edges, dtype=np.float64), cumulative)


def rebin(edges: Sequence[float], counts: Sequence[int], target: Sequence[float]) -> np.ndarray:
    """Counts of a histogram spread over other bins, assuming values are uniform within each bin."""
    return np.diff(_cdf(edges, counts, np.asarray(target, dtype=np.float64)))


def extend_edges(edges: Sequence[float], low: float, high: float) -> list[float]:
    """`edges` with bins of the first bin's width added until they cover [low, high]."""
    out = [float(e) for e in edges]
    width = (out[-1] - out[0]) / max(len(out) - 1, 1) or 1.0
    if low < out[0]:
        extra = math.ceil((out[0] - low) / width)
        below = [out[0] - width * i for i in range(min(extra, MAX_EXTRA_BINS), 0, -1)]
        if extra > MAX_EXTRA_BINS:
            below[0] = low
        out = below + out
    if high > out[-1]:
        extra = math.ceil((high - out[-1]) / width)
        above = [out[-1] + width * i for i in range(1, min(extra, MAX_EXTRA_BINS) + 1)]
        if extra > MAX_EXTRA_BINS:
            above[-1] = high
        out = out + above
    return out


def ks_statistic(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest gap between the two histograms' CDFs, over every edge of both."""
    total_a, total_b = sum(a["counts"]), sum(b["counts"])
    if not total_a or not total_b:
        return 0.0
    points = np.union1d(np.asarray(a["edges"], dtype=np.float64), np.asarray(b["edges"], dtype=np.float64))
    gap = _cdf(a["edges"], a["counts"], points) / total_a - _cdf(b["edges"], b["counts"], points) / total_b
    return float(np.max(np.abs(gap)))


def numeric_shift(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """PSI and KS of two profiled numeric columns, and both distributions on the common bins."""
    hist_a, hist_b = a.get("histogram"), b.get("histogram")
    if not hist_a or not hist_b or not sum(hist_a["counts"]) or not sum(hist_b["counts"]):
        return None
    edges = extend_edges(hist_a["edges"], hist_b["edges"][0], hist_b["edges"][-1])
    counts_a = rebin(hist_a["edges"], hist_a["counts"], edges)
    counts_b = rebin(hist_b["edges"], hist_b["counts"], edges)
    props_a, props_b = counts_a / counts_a.sum(), counts_b / counts_b.sum()
    return {
        "psi": psi(props_a, props_b),
        "ks": ks_statistic(hist_a, hist_b),
        "distribution": {"kind": "bins", "edges": edges, "a": props_a.tolist(), "b": props_b.tolist()},
    }


def _complete(column: dict[str, Any]) -> bool:
    """Every value of the column is in its top list, so a value missing from it really is absent."""
    return bool(column.get("top_exact")) and sum(t["count"] for t in column.get("top") or []) == column["non_null"]


def categorical_shift(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """PSI over the union of both top-value lists plus an "(other)" bucket."""
    total_a, total_b = a.get("non_null") or 0, b.get("non_null") or 0
    if not total_a or not total_b:
        return None
    top_a = {t["value"]: t["count"] for t in a.get("top") or []}
    top_b = {t["value"]: t["count"] for t in b.get("top") or []}
    complete_a, complete_b = _complete(a), _complete(b)
    # A value may have its own bucket only if both sides know its count; else it stays in "(other)".
    categories = [
        value
        for value in sorted(set(top_a) | set(top_b), key=lambda v: (-(top_a.get(v, 0) + top_b.get(v, 0)), v))
        if (value in top_a or complete_a) and (value in top_b or complete_b)
    ]
    counts_a = [top_a.get(v, 0) for v in categories]
    counts_b = [top_b.get(v, 0) for v in categories]
    other_a, other_b = total_a - sum(counts_a), total_b - sum(counts_b)
    if other_a or other_b:
        categories.append(OTHER)
        counts_a.append(other_a)
        counts_b.append(other_b)
    props_a = [c / total_a for c in counts_a]
    props_b = [c / total_b for c in counts_b]
    return {
        "psi": psi(props_a, props_b),
        "ks": None,
        "distribution": {"kind": "categories", "categories": categories, "a": props_a, "b": props_b},
    }


def _null_fraction(column: dict[str, Any]) -> float | None:
    return column["nulls"] / column["rows"] if column.get("rows") else None


def diff_profiles(profile_a: dict[str, Any], profile_b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-column shift for the columns both profiles have, most shifted first."""
    by_name_b = {c["name"]: c for c in profile_b.get("columns", [])}
    rows: list[dict[str, Any]] = []
    for column_a in profile_a.get("columns", []):
        column_b = by_name_b.get(column_a["name"])
        if column_b is None:
            continue
        shift: dict[str, Any] | None = None
        note = ""
        if column_a["kind"] == column_b["kind"] == "numeric":
            shift = numeric_shift(column_a, column_b)
        elif column_a["kind"] == column_b["kind"] == "categorical":
            shift = categorical_shift(column_a, column_b)
        elif column_a["kind"] != column_b["kind"]:
            note = f"{column_a['type']} became {column_b['type']}: the distributions are not comparable"
        if shift is None and not note:
            note = "no values to compare" if column_a["kind"] in ("numeric", "categorical") else "not compared"
        rows.append(
            {
                "name": column_a["name"],
                "kind": column_b["kind"],
                "type_a": column_a["type"],
                "type_b": column_b["type"],
                "psi": shift["psi"] if shift else None,
                "ks": shift["ks"] if shift else None,
                "severity": severity(shift["psi"] if shift else None),
                "null_fraction_a": _null_fraction(column_a),
                "null_fraction_b": _null_fraction(column_b),
                "mean_a": column_a.get("mean"),
                "mean_b": column_b.get("mean"),
                "distribution": shift["distribution"] if shift else None,
                "note": note,
            }
        )
    rows.sort(key=lambda r: (r["psi"] is None, -(r["psi"] or 0.0), r["name"]))
    return rows


def diff_schema(schema_a: list[dict[str, str]], schema_b: list[dict[str, str]]) -> dict[str, Any]:
    types_a = {c["name"]: c["type"] for c in schema_a}
    types_b = {c["name"]: c["type"] for c in schema_b}
    return {
        "added": [c for c in schema_b if c["name"] not in types_a],
        "removed": [c for c in schema_a if c["name"] not in types_b],
        "retyped": [
            {"name": c["name"], "from": types_a[c["name"]], "to": c["type"]}
            for c in schema_b
            if c["name"] in types_a and types_a[c["name"]] != c["type"]
        ],
        "unchanged": sum(1 for name, kind in types_b.items() if types_a.get(name) == kind),
    }


def diff_manifest(manifest_a: list[dict[str, Any]], manifest_b: list[dict[str, Any]]) -> dict[str, list[str]]:
    files_a = {m["path"]: m["sha256"] for m in manifest_a}
    files_b = {m["path"]: m["sha256"] for m in manifest_b}
    return {
        "added": sorted(set(files_b) - set(files_a)),
        "removed": sorted(set(files_a) - set(files_b)),
        "changed": sorted(p for p in set(files_a) & set(files_b) if files_a[p] != files_b[p]),
    }


def _profile_of(version: DatasetVersion, stored: DatasetProfile | None) -> tuple[dict[str, Any] | None, str]:
    """The version's profile data and where it came from: stored, computed now, pending or unsupported."""
    if version.format == DatasetFormat.DIRECTORY:
        return None, "unsupported"
    if stored is not None and stored.data is not None:
        return stored.data, "stored"
    if version.size <= SYNC_PROFILE_MAX_BYTES:
        from datasets.profiles import compute_profile

        try:
            return compute_profile(version), "computed"
        except ProfileError:
            return None, "failed"
    if stored is not None and stored.display_status == ProfileStatus.FAILED:
        return None, "failed"
    return None, "pending"


def _version_facts(version: DatasetVersion, source: str) -> dict[str, Any]:
    return {
        "number": version.number,
        "format": version.format,
        "size": version.size,
        "rows": version.row_count,
        "columns": len(version.schema),
        "created_at": version.created.isoformat(),
        "profile": source,
    }


def diff_versions(a: DatasetVersion, b: DatasetVersion) -> dict[str, Any]:
    """Everything that changed from version `a` to version `b` (of the same dataset or not)."""
    stored = {p.version_id: p for p in DatasetProfile.objects.filter(version__in=[a.pk, b.pk]).select_related("job")}
    profile_a, source_a = _profile_of(a, stored.get(a.pk))
    profile_b, source_b = _profile_of(b, stored.get(b.pk))
    rows_change = None
    if a.row_count is not None and b.row_count is not None:
        rows_change = {
            "a": a.row_count,
            "b": b.row_count,
            "change": b.row_count - a.row_count,
            "change_pct": (b.row_count - a.row_count) / a.row_count * 100 if a.row_count else None,
        }
    result: dict[str, Any] = {
        "dataset": a.dataset.name,
        "a": _version_facts(a, source_a),
        "b": _version_facts(b, source_b),
        "rows": rows_change,
        "size_change": b.size - a.size,
        "schema": diff_schema(a.schema, b.schema),
        "files": diff_manifest(a.manifest, b.manifest) if a.manifest or b.manifest else None,
        "columns": [],
        "pending": [v.number for v, source in ((a, source_a), (b, source_b)) if source in ("pending", "failed")],
        "method": METHOD,
    }
    if profile_a is not None and profile_b is not None:
        result["columns"] = diff_profiles(profile_a, profile_b)
    return result
