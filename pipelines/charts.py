"""Pure builders of the pipelines pages' Plotly figures: the DAG with each step's state, and the Gantt
timeline of a run's steps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

STATUS_COLOURS = {
    "pending": "#cbd5e1", "running": "#3b82f6", "succeeded": "#16a34a", "cached": "#86efac", "failed": "#dc2626",
    "upstream_failed": "#f97316", "cancelled": "#9ca3af", None: "#e5e7eb",
}  # fmt: skip


def layers(steps: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Each step's column: the length of the longest chain of steps it waits for."""
    needs = {s["name"]: list(s.get("needs", [])) for s in steps}
    depth: dict[str, int] = {}

    def walk(name: str) -> int:
        if name not in depth:
            depth[name] = 0  # a cycle cannot be saved, but never recurse forever
            depth[name] = 1 + max((walk(n) for n in needs[name]), default=-1)
        return depth[name]

    for name in needs:
        walk(name)
    return depth


def dag_figure(steps: Sequence[dict[str, Any]], states: dict[str, str | None]) -> dict[str, Any]:
    """Steps as nodes in columns by depth, arrows from each step to those that need it, coloured by state."""
    depth = layers(steps)
    columns: dict[int, list[str]] = {}
    for s in steps:
        columns.setdefault(depth[s["name"]], []).append(s["name"])
    position = {}
    for x, names in columns.items():
        for i, name in enumerate(names):
            position[name] = (x, (len(names) - 1) / 2 - i)
    annotations = [
        {"x": position[s["name"]][0], "y": position[s["name"]][1], "ax": position[n][0], "ay": position[n][1],
         "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1.2,
         "arrowwidth": 1.5, "arrowcolor": "#94a3b8", "standoff": 22, "startstandoff": 22, "text": ""}
        for s in steps for n in s.get("needs", [])
    ]  # fmt: skip
    names = [s["name"] for s in steps]
    node = {
        "type": "scatter", "mode": "markers+text", "x": [position[n][0] for n in names],
        "y": [position[n][1] for n in names], "text": names, "textposition": "bottom center",
        "customdata": [[s["type"], states.get(s["name"]) or "not run"] for s in steps],
        "hovertemplate": "%{text}<br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        "marker": {"size": 30, "color": [STATUS_COLOURS.get(states.get(n), STATUS_COLOURS[None]) for n in names],
                   "line": {"width": 2, "color": "#1e293b"}, "symbol": "square"},
    }  # fmt: skip
    width = max(depth.values(), default=0)
    height = max((len(c) for c in columns.values()), default=1)
    layout = {
        "height": 60 + 90 * height, "margin": {"l": 20, "r": 20, "t": 10, "b": 10}, "showlegend": False,
        "xaxis": {"visible": False, "range": [-0.5, width + 0.5]},
        "yaxis": {"visible": False, "range": [-(height / 2) - 0.1, height / 2]},
        "annotations": annotations, "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }  # fmt: skip
    return {"data": [node], "layout": layout}


def gantt_figure(steps: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """One bar per step that started, from its start to its end (or now), coloured by state."""
    started = [s for s in steps if s.get("started_at")]
    bars = {
        "type": "bar", "orientation": "h", "y": [s["name"] for s in started],
        "base": [s["started_at"].isoformat() for s in started],
        "x": [max(((s.get("finished_at") or now) - s["started_at"]).total_seconds() * 1000, 300) for s in started],
        "marker": {"color": [STATUS_COLOURS.get(s["status"], STATUS_COLOURS[None]) for s in started]},
        "customdata": [[s["status"], round(((s.get("finished_at") or now) - s["started_at"]).total_seconds(), 1)]
                       for s in started],
        "hovertemplate": "%{y}: %{customdata[0]}, %{customdata[1]} s<extra></extra>",
    }  # fmt: skip
    layout = {
        "height": max(160, 40 * len(started) + 80), "margin": {"l": 120, "r": 20, "t": 10, "b": 40},
        "xaxis": {"type": "date", "title": {"text": "time"}},
        "yaxis": {"autorange": "reversed", "type": "category"}, "bargap": 0.35,
    }  # fmt: skip
    return {"data": [bars] if started else [], "layout": layout}
