"""Drift of live inputs against the training data's profile (PSI, KS, chi-square), prediction drift,
the beat task's windows, and the drift heatmap."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from datasets.models import DatasetProfile, ProfileStatus
from datasets.profiles import compute_profile
from monitoring import charts, drift
from monitoring.models import DriftResult
from tests.datasets.factories import push
from tests.monitoring.conftest import T0

COLORS = ["red", "green", "blue"]


def holdout_csv(rows: int = 2000) -> bytes:
    rng = random.Random(1)
    lines = ["x0,color,label"]
    for _ in range(rows):
        lines.append(f"{rng.gauss(0, 1):.4f},{rng.choice(COLORS)},{rng.randint(0, 1)}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def profiled(deployment: Any, editor: Any) -> Any:
    version = push("training", holdout_csv(), filename="training.csv", author=editor)
    DatasetProfile.objects.update_or_create(
        version=version, defaults={"status": ProfileStatus.READY, "data": compute_profile(version)}
    )
    deployment.holdout_dataset_version = version
    deployment.target_column = "label"
    deployment.save()
    return deployment


def traffic(predict: Any, start: Any, count: int, shift: float = 0.0, colors: list[str] = COLORS) -> None:
    rng = random.Random(2)
    for i in range(count):
        row = {"x0": rng.gauss(0, 1) + shift, "color": rng.choice(colors)}
        predict(start + timedelta(seconds=i), inputs={"instances": [row]}, outputs=[[rng.random()]])


def by_feature(results: list[DriftResult]) -> dict[str, DriftResult]:
    return {r.feature: r for r in results}


def test_live_traffic_like_the_training_data_shows_no_drift(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 300)
    results = by_feature(drift.compute_drift(profiled, T0 + timedelta(minutes=10), minutes=10))
    assert set(results) >= {"x0", "color"} and "label" not in results
    assert results["x0"].severity == "none" and results["x0"].psi < 0.1 and results["x0"].ks < 0.1
    assert results["color"].p_value > 0.01 and results["color"].reference == "training v1"


def test_a_shifted_feature_and_a_skewed_category_are_major_drift(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 300, shift=2.0, colors=["red", "red", "red", "green"])
    results = by_feature(drift.compute_drift(profiled, T0 + timedelta(minutes=10), minutes=10))
    assert results["x0"].severity == "major" and results["x0"].ks > 0.5
    assert results["color"].severity in ("moderate", "major") and results["color"].p_value < 1e-6
    assert DriftResult.objects.filter(deployment=profiled).count() == len(results)


def test_positional_rows_map_onto_the_reference_columns_in_order() -> None:
    columns = drift.live_columns(
        [{"instances": [[1.0, "red"], [2.0, "blue"]]}, {"inputs": {"x0": [3.0]}}], ["x0", "color"]
    )
    assert columns == {"x0": [1.0, 2.0, 3.0], "color": ["red", "blue"]}
    split = drift.live_columns([{"dataframe_split": {"columns": ["color"], "data": [["green"]]}}], ["x0", "color"])
    assert split == {"color": ["green"]}


def test_predictions_drift_against_the_versions_first_day(profiled: Any, predict: Any) -> None:
    for i in range(100):
        predict(T0 + timedelta(seconds=i), outputs=[[0.2 + 0.001 * i]])
    later = T0 + timedelta(days=2)
    for i in range(100):
        predict(later + timedelta(seconds=i), outputs=[[0.9 + 0.0005 * i]])
    results = by_feature(drift.compute_drift(profiled, later + timedelta(minutes=5), minutes=10))
    assert results["prediction"].severity == "major" and results["prediction"].reference == "v1's first day"


def test_too_little_traffic_stores_nothing(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 5)
    assert drift.compute_drift(profiled, T0 + timedelta(minutes=10), minutes=10) == []


def test_the_beat_task_computes_the_window_ending_at_the_last_quarter_hour(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 200)
    assert drift.compute_all(now=T0 + timedelta(minutes=37)) > 0
    assert set(DriftResult.objects.values_list("window_end", flat=True)) == {T0 + timedelta(minutes=30)}


def test_the_heatmap_has_a_row_per_feature_and_a_column_per_window(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 200)
    drift.compute_drift(profiled, T0 + timedelta(minutes=10), minutes=10)
    traffic(predict, T0 + timedelta(minutes=10), 200, shift=3.0)
    drift.compute_drift(profiled, T0 + timedelta(minutes=20), minutes=10)
    figure = charts.drift_heatmap(list(DriftResult.objects.filter(deployment=profiled)))
    heatmap = figure["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["y"] == ["color", "prediction", "x0"]
    assert len(heatmap["x"]) == 2  # one column per window
    x0 = heatmap["z"][heatmap["y"].index("x0")]
    assert x0[0] < 0.1 < 0.25 < x0[1]


def test_the_deployment_page_shows_the_heatmap_and_the_latest_window(
    profiled: Any, predict: Any, viewer_client: Any
) -> None:
    from django.utils import timezone

    now = timezone.now().replace(second=0, microsecond=0)
    traffic(predict, now - timedelta(minutes=20), 200, shift=3.0)
    drift.compute_drift(profiled, now, minutes=30)
    page = viewer_client.get("/monitoring/churn-prod/", {"range": "1h"}).content.decode()
    assert 'id="drift-chart" data-figure="' in page
    assert "<td>x0</td><td>numeric</td>" in page and 'class="drift drift-major"' in page


def test_the_latest_drift_is_on_the_portals_metrics(profiled: Any, predict: Any, editor: Any) -> None:
    from django.test import Client
    from django.utils import timezone

    from accounts.services import create_api_token

    now = timezone.now().replace(second=0, microsecond=0)
    traffic(predict, now - timedelta(minutes=50), 200)
    older = by_feature(drift.compute_drift(profiled, now - timedelta(minutes=30), minutes=30))["x0"].psi
    traffic(predict, now - timedelta(minutes=20), 200, shift=3.0)
    newest = by_feature(drift.compute_drift(profiled, now, minutes=30))["x0"].psi
    assert abs(newest - older) > 0.1  # two windows that a wrong pick would show
    token = create_api_token(editor, "prometheus").secret
    body = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/metrics").content.decode()
    lines = [
        line
        for line in body.splitlines()
        if line.startswith('mlops_feature_drift_psi{deployment="churn-prod",feature="x0"}')
    ]
    assert len(lines) == 1 and float(lines[0].rsplit(" ", 1)[1]) == pytest.approx(newest)


def test_a_huge_value_lands_in_the_outer_bins_instead_of_stopping_drift(profiled: Any, predict: Any) -> None:
    traffic(predict, T0, 200)
    predict(T0 + timedelta(seconds=300), inputs={"instances": [{"x0": 1.7e308, "color": "red"}]})
    assert by_feature(drift.compute_drift(profiled, T0 + timedelta(minutes=10), minutes=10))["x0"].n == 201
