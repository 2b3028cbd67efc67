"""The monitoring charts' payloads, built from rollups summed in SQL, asserted exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitoring import charts, queries, rollups
from monitoring.models import MinuteRollup
from tests.monitoring.conftest import T0


def test_slots_are_whole_minutes_and_at_most_720() -> None:
    assert [queries.slot_width(r) for r in queries.RANGES.values()] == [1, 2, 15, 60]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [0, 4, 0] + [0] * 14, 0.75),  # all four in (0.5, 1]: the median halfway in
        (0.5, [2, 2] + [0] * 15, 0.5),
        (0.99, [0] * 16 + [3], 5000.0),  # the open last bucket answers its lower bound
        (0.5, [0] * 17, None),
    ],
)
def test_quantiles_interpolate_inside_their_bucket(q: float, buckets: list[int], expected: float | None) -> None:
    assert queries.quantile(q, buckets) == expected


def test_the_latency_chart_draws_p50_p95_p99_and_marks_deployment_events(
    predict: Any, deployment: Any, editor: Any
) -> None:
    for i in range(20):
        predict(T0 + timedelta(seconds=i), latency_ms=1.8 if i < 18 else 40.0)
    predict(T0 + timedelta(minutes=1), latency_ms=4.0)
    rollups.fill_rollups()
    event = deployment.events.create(kind="promoted", actor_name="erin", to_version=2, from_version=1)
    event.time = T0 + timedelta(seconds=90)
    event.save()
    series = queries.series(deployment, T0, T0 + timedelta(hours=1))
    figure = charts.latency_figure(series)
    assert [t["name"] for t in figure["data"]] == ["p50", "p95", "p99"]
    p50, p95, p99 = (t["y"] for t in figure["data"])
    assert figure["data"][0]["x"] == [T0.isoformat(), (T0 + timedelta(minutes=1)).isoformat()]
    assert (p50[0], p95[0], p99[0]) == (1.556, 37.5, 47.5)  # 18 in (1, 2] ms, 2 in (25, 50] ms
    assert figure["layout"]["shapes"][0]["x0"] == (T0 + timedelta(seconds=90)).isoformat()
    assert figure["layout"]["annotations"][0]["text"] == "promoted v2"


def test_the_traffic_chart_gives_requests_per_second_and_the_error_rate(predict: Any, deployment: Any) -> None:
    for i in range(6):
        predict(T0 + timedelta(seconds=i), status=500 if i < 3 else 200)
    rollups.fill_rollups()
    figure = charts.traffic_figure(queries.series(deployment, T0, T0 + timedelta(hours=1)))
    requests, errors = figure["data"]
    assert (requests["y"], errors["y"], errors["yaxis"]) == ([0.1], [50.0], "y2")


def test_the_quality_chart_has_accuracy_per_version_and_arm(predict: Any, deployment: Any, editor: Any) -> None:
    from monitoring import services

    predict(T0, request_id="s1", outputs=[[0.9]])
    predict(T0, request_id="c1", outputs=[[0.9]], version=2, arm="canary")
    predict(T0, request_id="c2", outputs=[[0.1]], version=2, arm="canary")
    services.record_feedback([{"request_id": r, "label": 1} for r in ("s1", "c1", "c2")], actor=editor)
    rollups.fill_rollups()
    figure = charts.quality_figure(queries.series(deployment, T0, T0 + timedelta(hours=1)))
    assert [(t["name"], t["y"]) for t in figure["data"]] == [("v1 stable", [1.0]), ("v2 canary", [0.5])]
    assert figure["data"][1]["line"]["dash"] == "dash"
    assert figure["layout"]["yaxis"]["tickformat"] == ".0%"


def test_thirty_days_of_minutes_come_back_as_720_hourly_points(deployment: Any) -> None:
    start = T0 - timedelta(days=30)
    MinuteRollup.objects.bulk_create(
        MinuteRollup(deployment=deployment, model_version=1, arm="stable", minute=start + timedelta(minutes=m),
                     epoch_minute=int(start.timestamp()) // 60 + m, requests=2, latency_sum_ms=4.0, b02=2)
        for m in range(30 * 24 * 60)
    )  # fmt: skip
    series = queries.series(deployment, start, T0 - timedelta(minutes=1))
    assert (series.width, len(series.total)) == (60, 720)
    assert {s.get("requests") for s in series.total} == {120}
