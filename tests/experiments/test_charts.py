"""The tracking charts' Plotly payloads, asserted exactly where it matters (no browser)."""

from __future__ import annotations

import json
import math

from experiments.charts import (
    RUN_COLOURS,
    as_number,
    metric_history_figure,
    overlay_figure,
    parallel_coordinates_figure,
    scatter_figure,
)


def test_a_metric_history_is_one_line_with_gaps_for_nan_and_infinity() -> None:
    figure = metric_history_figure("loss", [0, 1, 2, 3], [0.9, math.nan, math.inf, 0.4])
    assert figure["data"] == [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "loss",
            "x": [0, 1, 2, 3],
            "y": [0.9, None, None, 0.4],
            "line": {"color": RUN_COLOURS[0], "width": 2},
            "hovertemplate": "step %{x}<br>loss %{y}<extra></extra>",
            "marker": {"size": 5},
        }
    ]
    layout = figure["layout"]
    assert layout["xaxis"]["title"] == {"text": "step"} and "type" not in layout["xaxis"]
    assert layout["yaxis"]["title"] == {"text": "loss"}
    assert layout["showlegend"] is False and layout["height"] == 260
    json.dumps(figure, allow_nan=False)  # what JSON can carry


def test_a_long_history_is_drawn_as_a_plain_line_and_time_uses_a_date_axis() -> None:
    figure = metric_history_figure("acc", list(range(500)), [0.5] * 500, x_title="time", x_type="date")
    assert figure["data"][0]["mode"] == "lines" and "marker" not in figure["data"][0]
    assert figure["layout"]["xaxis"]["type"] == "date"


def test_the_overlay_draws_one_coloured_line_per_run() -> None:
    figure = overlay_figure(
        "loss",
        [
            {"name": "alpha", "x": [0, 1], "y": [0.9, 0.5]},
            {"name": "beta", "x": [0, 1, 2], "y": [0.8, math.nan, 0.3], "colour": "#123456"},
        ],
    )
    assert [(t["name"], t["x"], t["y"], t["line"]["color"]) for t in figure["data"]] == [
        ("alpha", [0, 1], [0.9, 0.5], RUN_COLOURS[0]),
        ("beta", [0, 1, 2], [0.8, None, 0.3], "#123456"),
    ]
    assert figure["layout"]["showlegend"] is True
    assert figure["layout"]["yaxis"]["title"] == {"text": "loss"}


def test_parallel_coordinates_have_params_then_metrics_with_text_params_as_ticks() -> None:
    runs = [
        {"name": "a", "params": {"lr": "0.1", "opt": "adam"}, "metrics": {"acc": 0.7}},
        {"name": "b", "params": {"lr": "0.01", "opt": "sgd"}, "metrics": {"acc": 0.9}},
        {"name": "c", "params": {"lr": "0.001", "opt": "adam"}, "metrics": {"acc": 0.8}},
        {"name": "no-acc", "params": {"lr": "1", "opt": "adam"}, "metrics": {}},
        {"name": "nan-acc", "params": {"lr": "1", "opt": "adam"}, "metrics": {"acc": math.nan}},
    ]
    figure = parallel_coordinates_figure(runs, ["lr", "opt"], ["acc"])
    trace = figure["data"][0]
    assert trace["type"] == "parcoords"
    assert trace["dimensions"] == [
        {"label": "lr", "values": [0.1, 0.01, 0.001]},
        {"label": "opt", "values": [0, 1, 0], "tickvals": [0, 1], "ticktext": ["adam", "sgd"], "range": [0, 1]},
        {"label": "acc", "values": [0.7, 0.9, 0.8]},
    ]
    assert trace["line"]["color"] == [0.7, 0.9, 0.8] and trace["line"]["showscale"] is True
    assert figure["layout"]["meta"] == {"skipped": 2}


def test_a_flat_parallel_axis_gets_a_range_and_no_axes_means_no_trace() -> None:
    runs = [
        {"name": "a", "params": {"seed": "1"}, "metrics": {}},
        {"name": "b", "params": {"seed": "1"}, "metrics": {}},
    ]
    trace = parallel_coordinates_figure(runs, ["seed"], [])["data"][0]
    assert trace["dimensions"] == [{"label": "seed", "values": [1.0, 1.0], "range": [0.0, 2.0]}]
    assert trace["line"] == {"color": RUN_COLOURS[0]}
    assert parallel_coordinates_figure(runs, [], [])["data"] == []


def test_the_scatter_is_numeric_when_the_param_is_and_categorical_otherwise() -> None:
    numeric = scatter_figure(
        [
            {"name": "a", "x": "0.1", "y": 0.7, "colour": "#111111"},
            {"name": "b", "x": "0.01", "y": 0.9, "colour": "#222222"},
            {"name": "c", "x": "0.5", "y": math.nan},
        ],
        "lr",
        "acc",
    )
    assert numeric["data"] == [
        {
            "type": "scatter",
            "mode": "markers",
            "x": [0.1, 0.01],
            "y": [0.7, 0.9],
            "text": ["a", "b"],
            "marker": {"size": 11, "color": ["#111111", "#222222"], "line": {"width": 0}},
            "hovertemplate": "%{text}<br>lr %{x}<br>acc %{y}<extra></extra>",
        }
    ]
    assert numeric["layout"]["xaxis"]["type"] == "linear" and numeric["layout"]["meta"] == {"skipped": 1}
    text = scatter_figure([{"name": "a", "x": "adam", "y": 1.0}, {"name": "b", "x": "0.1", "y": 2.0}], "opt", "acc")
    assert text["data"][0]["x"] == ["adam", "0.1"] and text["layout"]["xaxis"]["type"] == "category"
    assert scatter_figure([{"name": "a", "x": None, "y": 1.0}], "lr", "acc")["data"] == []


def test_param_values_read_as_numbers_only_when_they_are_finite_numbers() -> None:
    assert [as_number(v) for v in ["0.1", " 3 ", "1e-3", "adam", "", "nan", "inf", True, 2, None]] == [
        0.1,
        3.0,
        0.001,
        None,
        None,
        None,
        None,
        None,
        2.0,
        None,
    ]
