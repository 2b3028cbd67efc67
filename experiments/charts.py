"""Pure builders of Plotly figure dicts for tracking (tested without a browser).

They take plain lists and dicts (already downsampled where a series can be long) and return the
`{"data": [...], "layout": {...}}` that Plotly.js draws. Non-finite values become None, which
Plotly draws as a gap and which JSON can carry (NaN cannot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# One colour per run, in the order the runs were chosen; the first is the portal's accent.
RUN_COLOURS = [
    "#4f46e5",
    "#16a34a",
    "#dc2626",
    "#f59e0b",
    "#0891b2",
    "#db2777",
    "#7c3aed",
    "#65a30d",
    "#ea580c",
    "#475569",
]


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def finite_or_none(value: Any) -> float | None:
    """A number Plotly and JSON can carry, or None for NaN, ±inf and missing values."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_number(value: Any) -> float | None:
    """A param's value as a finite number, or None when it is text (`"adam"`) or not finite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return finite_or_none(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return finite_or_none(float(text))
        except ValueError:
            return None
    return None


def _base_layout(height: int = 260) -> dict[str, Any]:
    return {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 10, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"size": 12},
        "hovermode": "closest",
    }


def _axis(title: str, *, axis_type: str | None = None) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": title}, "zeroline": False, "gridcolor": "#eef0f4"}
    if axis_type:
        axis["type"] = axis_type
    return axis


def metric_history_figure(
    key: str, xs: Sequence[Any], ys: Sequence[Any], *, x_title: str = "step", x_type: str | None = None
) -> dict[str, Any]:
    """One metric's history as a line (with markers when there are few points)."""
    few = len(xs) <= 60
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines+markers" if few else "lines",
        "name": key,
        "x": list(xs),
        "y": [finite_or_none(y) for y in ys],
        "line": {"color": RUN_COLOURS[0], "width": 2},
        "hovertemplate": f"{x_title} %{{x}}<br>{key} %{{y}}<extra></extra>",
    }
    if few:
        trace["marker"] = {"size": 5}
    layout = _base_layout()
    layout["showlegend"] = False
    layout["xaxis"] = _axis(x_title, axis_type=x_type)
    layout["yaxis"] = _axis(key)
    return {"data": [trace], "layout": layout}


def overlay_figure(key: str, series: Sequence[dict[str, Any]], *, x_title: str = "step") -> dict[str, Any]:
    """Several runs' histories of one metric on the same axes.

    `series` items: {"name": run name, "x": [...], "y": [...], "colour": optional}; without a
    colour, a run gets `run_colour(index)`. Passing the colour keeps a run's colour the same across
    every chart of the compare page even when some runs lack this metric.
    """
    traces = []
    for index, item in enumerate(series):
        xs, ys = list(item["x"]), item["y"]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(xs) <= 60 else "lines",
                "name": item["name"],
                "x": xs,
                "y": [finite_or_none(y) for y in ys],
                "line": {"color": item.get("colour") or run_colour(index), "width": 2},
                "marker": {"size": 5},
                "hovertemplate": f"{item['name']}<br>{x_title} %{{x}}<br>{key} %{{y}}<extra></extra>",
            }
        )
    layout = _base_layout(340)
    layout["showlegend"] = True
    layout["legend"] = {"orientation": "h", "y": -0.22}
    layout["margin"] = {"l": 56, "r": 16, "t": 10, "b": 64}
    layout["xaxis"] = _axis(x_title)
    layout["yaxis"] = _axis(key)
    return {"data": traces, "layout": layout}


def _dimension(label: str, values: list[Any]) -> dict[str, Any]:
    numbers = [as_number(v) for v in values]
    if all(n is not None for n in numbers):
        dimension: dict[str, Any] = {"label": label, "values": numbers}
        low, high = min(numbers), max(numbers)  # type: ignore[type-var]
        if low == high:  # a flat axis still needs a range, or Plotly squashes it to a point
            dimension["range"] = [low - 1, high + 1]
        return dimension
    # Text values (an optimizer's name) become evenly spaced ticks, in sorted order.
    categories = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(categories)}
    return {
        "label": label,
        "values": [index[str(v)] for v in values],
        "tickvals": list(range(len(categories))),
        "ticktext": categories,
        "range": [-0.5, len(categories) - 0.5] if len(categories) == 1 else [0, len(categories) - 1],
    }


def parallel_coordinates_figure(
    runs: Sequence[dict[str, Any]], param_keys: Sequence[str], metric_keys: Sequence[str]
) -> dict[str, Any]:
    """Params then metrics as parallel axes, one line per run, coloured by the last metric.

    `runs` items: {"name", "params": {key: str}, "metrics": {key: float | None}}. A run that lacks
    one of the axes cannot be drawn as a line across all of them, so it is left out; the layout's
    `meta.skipped` says how many were.
    """
    columns = [("params", k) for k in param_keys] + [("metrics", k) for k in metric_keys]
    complete = [
        run
        for run in runs
        if all(
            (run[kind].get(key) is not None and (kind == "params" or finite_or_none(run[kind][key]) is not None))
            for kind, key in columns
        )
    ]
    layout = _base_layout(380)
    layout["margin"] = {"l": 64, "r": 64, "t": 48, "b": 24}
    layout["meta"] = {"skipped": len(runs) - len(complete)}
    if not columns or not complete:
        return {"data": [], "layout": layout}
    dimensions = [_dimension(key, [run[kind][key] for run in complete]) for kind, key in columns]
    line: dict[str, Any] = {"color": RUN_COLOURS[0]}
    if metric_keys:
        colour_values = dimensions[-1]["values"]
        line = {
            "color": colour_values,
            "colorscale": [[0, "#c7d2fe"], [0.5, "#6366f1"], [1, "#312e81"]],
            "showscale": True,
            "colorbar": {"title": {"text": metric_keys[-1]}, "thickness": 12},
        }
    trace = {"type": "parcoords", "dimensions": dimensions, "line": line, "labelangle": 0}
    return {"data": [trace], "layout": layout}


def scatter_figure(points: Sequence[dict[str, Any]], x_label: str, y_label: str) -> dict[str, Any]:
    """A param against a metric, one marker per run, labelled with the run's name.

    `points` items: {"name", "x": param value (text), "y": metric value}. The x axis is numeric when
    every value is a number and categorical otherwise; points without a finite y are left out.
    """
    drawn = [p for p in points if finite_or_none(p["y"]) is not None and p["x"] is not None]
    numeric = bool(drawn) and all(as_number(p["x"]) is not None for p in drawn)
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": [as_number(p["x"]) if numeric else str(p["x"]) for p in drawn],
        "y": [finite_or_none(p["y"]) for p in drawn],
        "text": [p["name"] for p in drawn],
        "marker": {"size": 11, "color": [p.get("colour", RUN_COLOURS[0]) for p in drawn], "line": {"width": 0}},
        "hovertemplate": f"%{{text}}<br>{x_label} %{{x}}<br>{y_label} %{{y}}<extra></extra>",
    }
    layout = _base_layout(340)
    layout["showlegend"] = False
    layout["xaxis"] = _axis(x_label, axis_type="linear" if numeric else "category")
    layout["yaxis"] = _axis(y_label)
    layout["meta"] = {"skipped": len(points) - len(drawn)}
    return {"data": [trace] if drawn else [], "layout": layout}
