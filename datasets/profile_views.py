"""Profile and diff pages: the profile section of a version's page, re-running it, the diff page."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import role_required
from accounts.services import has_role
from datasets import charts, profiles
from datasets.diff import MAJOR, MODERATE, diff_versions
from datasets.models import Dataset, DatasetVersion
from datasets.profiler import QUANTILE_KEYS
from datasets.queries import diff_pair, profile_of, profile_state


def profile_context(request: HttpRequest, version: DatasetVersion) -> dict[str, Any]:
    """What the version page's profile section needs (one query: the profile row with its job)."""
    profile = profile_of(version)
    state = profile_state(profile)
    columns = []
    for column in (state["profile"] or {}).get("columns", []):
        figure = charts.column_figure(column)
        quantiles = column.get("quantiles") or {}
        shown = {key: number(column.get(key)) for key in ("min", "max", "mean", "std")}
        shown["quantiles"] = [number(quantiles.get(key)) for key in QUANTILE_KEYS]
        if column.get("kind") == "categorical" and column.get("min_length") is not None:
            shown["min"], shown["max"] = f"{column['min_length']} ch", f"{column['max_length']} ch"
        columns.append({**column, "shown": shown, "figure": json.dumps(figure) if figure else ""})
    return {
        "profile": profile,
        "profile_state": state,
        "profile_columns": columns,
        "profile_figures": any(c["figure"] for c in columns),
        "quantile_keys": QUANTILE_KEYS,
        "can_profile": has_role(request.user, Role.EDITOR) and version.format != "directory",
    }


def number(value: Any) -> str:
    """A statistic for a table cell: integers with separators, other numbers to 4 significant digits.

    Fractions from 1,000 up are rounded to whole numbers with separators (a mean of 59,999.5 reads
    "60,000", not "6e+04"); only the very large and the very small get an exponent.
    """
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if 1000 <= abs(value) < 1e15:
        return f"{round(value):,}"
    return f"{value:.4g}"


@require_POST
@role_required(Role.EDITOR)
def rerun_profile(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion.objects.select_related("dataset"), dataset__name=name, number=number)
    _, started = profiles.request_profile(version, requested_by=request.user)
    if started:
        messages.success(request, f"Profiling {version} again.")
    else:
        messages.info(request, f"{version} is already being profiled.")
    return redirect("datasets:version", name=name, number=number)


def diff(request: HttpRequest, name: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, name=name)
    numbers = list(dataset.versions.order_by("-number").values_list("number", flat=True))
    context: dict[str, Any] = {"dataset": dataset, "numbers": numbers, "moderate": MODERATE, "major": MAJOR}
    if len(numbers) < 2:
        return render(request, "datasets/diff.html", {**context, "result": None})
    try:
        a, b = diff_pair(name, request.GET.get("a"), request.GET.get("b") or str(numbers[0]))
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    result = diff_versions(a, b)
    label_a, label_b = f"v{a.number}", f"v{b.number}"
    for row in result["columns"]:
        figure = charts.shift_figure(row, label_a, label_b)
        row["figure"] = json.dumps(figure) if figure else ""
    return render(request, "datasets/diff.html", {**context, "result": result, "a": a, "b": b})
