"""Pure builders of Plotly figure dicts for jobs (tested without a browser)."""

from __future__ import annotations

from typing import Any

STATUS_COLOURS = {
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#9ca3af",
    "running": "#2563eb",
    "queued": "#f59e0b",
}


STATUS_LABELS = {
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "running": "Running",
    "queued": "Queued",
}


def jobs_per_day_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A stacked bar chart of jobs per day by status."""
    days = [row["day"].isoformat() for row in rows]
    statuses = [s for s in STATUS_COLOURS if any(row.get(s) for row in rows)]
    traces = [
        {
            "type": "bar",
            "name": STATUS_LABELS[status],
            "x": days,
            "y": [row.get(status, 0) for row in rows],
            "marker": {"color": STATUS_COLOURS[status]},
        }
        for status in statuses
    ]
    return {
        "data": traces,
        "layout": {
            "barmode": "stack",
            "height": 260,
            "margin": {"l": 40, "r": 10, "t": 10, "b": 40},
            "legend": {"orientation": "h", "y": -0.25},
            "xaxis": {"type": "date", "tickformat": "%b %d"},
            "yaxis": {"title": {"text": "jobs"}, "rangemode": "tozero"},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
    }
