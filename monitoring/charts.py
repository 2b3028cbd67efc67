"""Pure builders of the monitoring charts' Plotly figure dicts (tested by asserting the payload).

Each takes a `queries.Series` (slots already summed in SQL) and returns `{"data", "layout"}`. Deployment
events (rollout started, promoted, rolled back) are drawn on every chart as dotted vertical lines with a
label, so a change in latency or accuracy can be read against what was deployed when.
"""

from __future__ import annotations

from typing import Any

from deployments.models import DeploymentEvent
from monitoring.queries import Series, Slot, quantile

COLOURS = {"p50": "#4f46e5", "p95": "#f59e0b", "p99": "#dc2626", "requests": "#4f46e5", "errors": "#dc2626"}
ARM_COLOURS = ["#4f46e5", "#16a34a", "#0891b2", "#db2777", "#7c3aed", "#ea580c"]
EVENT_COLOURS = {
    DeploymentEvent.Kind.ROLLOUT_STARTED: "#6b7280",
    DeploymentEvent.Kind.PROMOTED: "#16a34a",
    DeploymentEvent.Kind.ROLLED_BACK: "#dc2626",
}


def _iso(slot: Slot) -> str:
    return slot.start.isoformat()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def event_label(event: DeploymentEvent) -> str:
    if event.kind == DeploymentEvent.Kind.ROLLOUT_STARTED:
        return f"rollout v{event.to_version}"
    if event.kind == DeploymentEvent.Kind.PROMOTED:
        return f"promoted v{event.to_version}"
    return f"rolled back to v{event.to_version}"


def _layout(series: Series, title: str, yaxis: dict[str, Any], **extra: Any) -> dict[str, Any]:
    shapes = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": e.time.isoformat(), "x1": e.time.isoformat(),
         "y0": 0, "y1": 1, "line": {"color": EVENT_COLOURS.get(e.kind, "#6b7280"), "width": 1, "dash": "dot"}}
        for e in series.events
    ]  # fmt: skip
    annotations = [
        {"x": e.time.isoformat(), "y": 1, "xref": "x", "yref": "paper", "text": event_label(e), "showarrow": False,
         "xanchor": "left", "yanchor": "top", "font": {"size": 10, "color": EVENT_COLOURS.get(e.kind, "#6b7280")}}
        for e in series.events
    ]  # fmt: skip
    return {
        "title": {"text": title, "font": {"size": 14}},
        "height": 280,
        "margin": extra.pop("margin", {"l": 56, "r": 16, "t": 36, "b": 36}),
        "xaxis": {"type": "date", "range": [series.start.isoformat(), series.end.isoformat()]},
        "yaxis": yaxis,
        "legend": {"orientation": "h", "y": -0.2},
        "shapes": shapes,
        "annotations": annotations,
        "hovermode": "x unified",
        **extra,
    }


def latency_figure(series: Series) -> dict[str, Any]:
    """p50, p95 and p99 of all traffic per slot, from the summed histogram buckets."""
    x = [_iso(s) for s in series.total]
    data = [
        {"type": "scatter", "mode": "lines", "name": name, "x": x,
         "y": [_round(quantile(q, s.buckets)) for s in series.total], "line": {"color": COLOURS[name]}}
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    ]  # fmt: skip
    return {"data": data, "layout": _layout(series, "Latency (ms)", {"title": "ms", "rangemode": "tozero"})}


def traffic_figure(series: Series) -> dict[str, Any]:
    """Requests per second and the error rate (on its own axis, in %)."""
    x = [_iso(s) for s in series.total]
    seconds = series.slot_seconds
    data = [
        {"type": "bar", "name": "requests/s", "x": x, "y": [_round(s.get("requests") / seconds) for s in series.total],
         "marker": {"color": COLOURS["requests"]}, "opacity": 0.6},
        {"type": "scatter", "mode": "lines+markers", "name": "error rate %", "x": x, "yaxis": "y2",
         "y": [_round(100 * s.error_rate, 2) if s.error_rate is not None else None for s in series.total],
         "line": {"color": COLOURS["errors"]}, "marker": {"size": 4}},
    ]  # fmt: skip
    return {
        "data": data,
        "layout": _layout(
            series, "Requests and errors", {"title": "requests/s", "rangemode": "tozero"},
            yaxis2={"title": "errors %", "overlaying": "y", "side": "right", "rangemode": "tozero"},
            margin={"l": 56, "r": 56, "t": 36, "b": 36},  # room for the right axis
        ),
    }  # fmt: skip


def quality_figure(series: Series) -> dict[str, Any]:
    """Accuracy per model version and arm (classification), or MAE (regression) when only values arrived."""
    regression = not any(s.get("labelled") for slots in series.by_arm.values() for s in slots) and any(
        s.get("valued") for slots in series.by_arm.values() for s in slots
    )
    data = []
    for index, ((version, arm), slots) in enumerate(sorted(series.by_arm.items())):
        values = [s.mae if regression else s.accuracy for s in slots]
        if all(v is None for v in values):
            continue
        data.append(
            {"type": "scatter", "mode": "lines+markers", "name": f"v{version} {arm}", "x": [_iso(s) for s in slots],
             "y": [_round(v, 4) for v in values], "connectgaps": False,
             "line": {"color": ARM_COLOURS[index % len(ARM_COLOURS)], **({"dash": "dash"} if arm == "canary" else {})},
             "marker": {"size": 4}}
        )  # fmt: skip
    title, axis = ("MAE", {"title": "MAE", "rangemode": "tozero"}) if regression else (
        "Accuracy (from feedback)", {"title": "accuracy", "range": [0, 1.02], "tickformat": ".0%"})  # fmt: skip
    return {"data": data, "layout": _layout(series, title, axis)}


def drift_heatmap(results: list[Any]) -> dict[str, Any]:
    """PSI per feature (rows) and window (columns): green under 0.1, amber to 0.25, red above."""
    windows = sorted({r.window_end for r in results})
    features = sorted({r.feature for r in results})
    cells = {(r.feature, r.window_end): r for r in results}
    z = [[_round(cells[(f, w)].psi, 4) if (f, w) in cells else None for w in windows] for f in features]
    text = [
        [f"{cells[(f, w)].severity}, n={cells[(f, w)].n}" if (f, w) in cells else "no data" for w in windows]
        for f in features
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [w.isoformat() for w in windows],
                "y": features,
                "z": z,
                "text": text,
                "zmin": 0,
                "zmax": 0.5,
                "hovertemplate": "%{y} at %{x}<br>PSI %{z}<br>%{text}<extra></extra>",
                "colorscale": [
                    [0, "#dcfce7"],
                    [0.2, "#bbf7d0"],
                    [0.2, "#fef3c7"],
                    [0.5, "#fde68a"],
                    [0.5, "#fecaca"],
                    [1, "#dc2626"],
                ],
                "colorbar": {"title": "PSI", "tickvals": [0, 0.1, 0.25, 0.5]},
            }
        ],
        "layout": {
            "title": {"text": "Drift per feature (PSI against the training data)", "font": {"size": 14}},
            "height": max(220, 60 + 28 * len(features)),
            "margin": {"l": 120, "r": 16, "t": 36, "b": 36},
            "xaxis": {"type": "date"},
            "yaxis": {"automargin": True},
        },
    }
