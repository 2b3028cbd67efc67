"""Pure builders of Plotly figure dicts for profiles and diffs (tested by asserting the payload)."""

from __future__ import annotations

import itertools
from typing import Any

BASE_COLOUR = "#4f46e5"  # the portal's accent: the single version, or the base of a diff
OTHER_COLOUR = "#f59e0b"
TOP_BARS = 20


def _layout(height: int = 220, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 48, "r": 12, "t": 8, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"size": 11},
        "bargap": 0.02,
        "showlegend": False,
        "yaxis": {"rangemode": "tozero", "gridcolor": "#eef0f4"},
    }
    layout.update(extra)
    return layout


def _centres(edges: list[float]) -> tuple[list[float], list[float]]:
    centres = [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)]
    widths = [hi - lo for lo, hi in itertools.pairwise(edges)]
    return centres, widths


def histogram_figure(column: dict[str, Any]) -> dict[str, Any] | None:
    """A profiled numeric column's histogram: one bar per bin, as wide as the bin."""
    histogram = column.get("histogram")
    if not histogram:
        return None
    centres, widths = _centres(histogram["edges"])
    return {
        "data": [
            {
                "type": "bar",
                "x": centres,
                "y": histogram["counts"],
                "width": widths,
                "marker": {"color": BASE_COLOUR},
                "hovertemplate": "%{x}: %{y} rows<extra></extra>",
            }
        ],
        "layout": _layout(xaxis={"title": {"text": column["name"]}}, yaxis={"title": {"text": "rows"}}),
    }


def top_values_figure(column: dict[str, Any], limit: int = TOP_BARS) -> dict[str, Any] | None:
    """A text or boolean column's most frequent values, as horizontal bars, the most frequent on top."""
    top = (column.get("top") or [])[:limit]
    if not top:
        return None
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": [t["count"] for t in reversed(top)],
                "y": [t["value"] for t in reversed(top)],
                "marker": {"color": BASE_COLOUR},
                "hovertemplate": "%{y}: %{x} rows<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(160, 18 * len(top) + 50),
            margin={"l": 120, "r": 12, "t": 8, "b": 32},
            bargap=0.3,  # categories, not bins: gaps keep equal bars from merging into one block
            yaxis={"type": "category", "automargin": True},
            xaxis={"title": {"text": "rows"}, "rangemode": "tozero"},
        ),
    }


def column_figure(column: dict[str, Any]) -> dict[str, Any] | None:
    if column.get("kind") == "numeric":
        return histogram_figure(column)
    if column.get("kind") == "categorical":
        return top_values_figure(column)
    return None


def shift_figure(row: dict[str, Any], label_a: str, label_b: str) -> dict[str, Any] | None:
    """A diff row's two distributions (proportions): overlaid histograms, or grouped bars for categories."""
    distribution = row.get("distribution")
    if not distribution:
        return None
    legend = {"showlegend": True, "legend": {"orientation": "h", "y": 1.12, "x": 0}}
    if distribution["kind"] == "bins":
        centres, widths = _centres(distribution["edges"])
        traces = [
            {
                "type": "bar",
                "name": label,
                "x": centres,
                "y": values,
                "width": widths,
                "opacity": 0.55,
                "marker": {"color": colour},
                "hovertemplate": f"{label} %{{x}}: %{{y:.1%}}<extra></extra>",
            }
            for label, values, colour in (
                (label_a, distribution["a"], BASE_COLOUR),
                (label_b, distribution["b"], OTHER_COLOUR),
            )
        ]
        return {
            "data": traces,
            "layout": _layout(
                barmode="overlay",
                xaxis={"title": {"text": row["name"]}},
                yaxis={"title": {"text": "share of rows"}, "tickformat": ".0%", "rangemode": "tozero"},
                **legend,
            ),
        }
    categories = distribution["categories"]
    traces = [
        {
            "type": "bar",
            "name": label,
            "x": categories,
            "y": values,
            "marker": {"color": colour},
            "hovertemplate": f"{label} %{{x}}: %{{y:.1%}}<extra></extra>",
        }
        for label, values, colour in (
            (label_a, distribution["a"], BASE_COLOUR),
            (label_b, distribution["b"], OTHER_COLOUR),
        )
    ]
    return {
        "data": traces,
        "layout": _layout(
            barmode="group",
            xaxis={"type": "category", "title": {"text": row["name"]}},
            yaxis={"title": {"text": "share of rows"}, "tickformat": ".0%", "rangemode": "tozero"},
            **legend,
        ),
    }
