"""Diffs between versions: schema changes, row counts, PSI and KS, against values worked out by hand."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from datasets import diff
from datasets.models import DatasetProfile
from jobs import runner
from tests.datasets.factories import push

pytestmark = pytest.mark.django_db


def numeric(name: str, edges: list[float], counts: list[int], **extra: Any) -> dict[str, Any]:
    total = sum(counts)
    return {"name": name, "type": "double", "kind": "numeric", "rows": total, "nulls": 0, "non_null": total,
            "histogram": {"edges": edges, "counts": counts}, **extra}  # fmt: skip


def categorical(name: str, counts: dict[str, int]) -> dict[str, Any]:
    total = sum(counts.values())
    top = [{"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"name": name, "type": "string", "kind": "categorical", "rows": total, "nulls": 0, "non_null": total,
            "top": top, "top_exact": True}  # fmt: skip


def test_psi_of_identical_proportions_is_zero_and_of_a_known_shift_matches_the_formula() -> None:
    assert diff.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert diff.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2747, abs=1e-4)
    # An empty bucket counts as EPSILON instead of making the index infinite.
    assert diff.psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )


def test_severity_follows_the_usual_psi_thresholds() -> None:
    assert [diff.severity(v) for v in [0.0, 0.099, 0.1, 0.25, 0.2501, None]] == [
        "none", "none", "moderate", "moderate", "major", "n/a",
    ]  # fmt: skip


def test_ks_of_identical_histograms_is_zero_and_of_disjoint_ones_is_one() -> None:
    a = {"edges": [0.0, 1.0, 2.0], "counts": [5, 5]}
    assert diff.ks_statistic(a, a) == 0.0
    assert diff.ks_statistic(a, {"edges": [10.0, 11.0, 12.0], "counts": [1, 1]}) == 1.0
    # Half the mass moved one bin up: at x = 1 the CDFs are 0.5 and 0.0.
    assert diff.ks_statistic(a, {"edges": [1.0, 2.0, 3.0], "counts": [5, 5]}) == pytest.approx(0.5)


def test_the_newer_histogram_is_spread_over_the_base_bins_extended_to_cover_it() -> None:
    edges = diff.extend_edges([0.0, 1.0, 2.0], -0.5, 3.5)
    assert edges == [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(diff.rebin([0.0, 2.0], [10], [0.0, 1.0, 2.0])) == [5.0, 5.0]  # uniform within its bin
    far = diff.extend_edges([0.0, 1.0], 0.0, 1000.0)
    assert len(far) == 2 + diff.MAX_EXTRA_BINS and far[-1] == 1000.0  # one wide bin takes the rest


def test_a_shifted_numeric_column_has_a_major_psi_and_a_large_ks() -> None:
    base = numeric("x", [0.0, 1.0, 2.0, 3.0, 4.0], [10, 40, 40, 10])
    same = diff.numeric_shift(base, base)
    assert same is not None and same["psi"] == 0.0 and same["ks"] == 0.0
    moved = diff.numeric_shift(base, numeric("x", [2.0, 3.0, 4.0, 5.0, 6.0], [10, 40, 40, 10]))
    # At x = 3 the base CDF is 0.9 and the moved one 0.1: the largest gap.
    assert moved is not None and moved["psi"] > 1.0 and moved["ks"] == pytest.approx(0.8)
    assert moved["distribution"]["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert moved["distribution"]["a"] == pytest.approx([0.1, 0.4, 0.4, 0.1, 0.0, 0.0])
    assert moved["distribution"]["b"] == pytest.approx([0.0, 0.0, 0.1, 0.4, 0.4, 0.1])


def test_categorical_psi_uses_the_union_of_top_values() -> None:
    a = categorical("c", {"red": 50, "green": 50})
    b = categorical("c", {"red": 25, "green": 25, "blue": 50})
    shift = diff.categorical_shift(a, b)
    assert shift is not None
    assert shift["distribution"]["categories"] == ["green", "red", "blue"]
    expected = diff.psi([0.5, 0.5, 0.0], [0.25, 0.25, 0.5])
    assert shift["psi"] == pytest.approx(expected) and shift["ks"] is None
    # A value outside an incomplete top list stays in "(other)" on both sides.
    partial = {**categorical("c", {"red": 60}), "rows": 100, "non_null": 100, "top_exact": False}
    shift = diff.categorical_shift(partial, b)
    assert shift is not None and shift["distribution"]["categories"] == ["red", "(other)"]
    assert shift["distribution"]["a"] == pytest.approx([0.6, 0.4])
    assert shift["distribution"]["b"] == pytest.approx([0.25, 0.75])


def test_the_schema_diff_names_added_removed_and_retyped_columns() -> None:
    a = [{"name": "id", "type": "int64"}, {"name": "age", "type": "int64"}, {"name": "old", "type": "string"}]
    b = [{"name": "id", "type": "int64"}, {"name": "age", "type": "double"}, {"name": "new", "type": "bool"}]
    assert diff.diff_schema(a, b) == {
        "added": [{"name": "new", "type": "bool"}],
        "removed": [{"name": "old", "type": "string"}],
        "retyped": [{"name": "age", "from": "int64", "to": "double"}],
        "unchanged": 1,
    }


def _csv(values: list[float], extra: str = "") -> bytes:
    header = "x,colour" + (",extra" if extra else "")
    colours = ["red", "green", "blue"]
    lines = [f"{v},{colours[i % 3]}" + (f",{extra}" if extra else "") for i, v in enumerate(values)]
    return (header + "\n" + "\n".join(lines) + "\n").encode()


def _profiled(data: bytes, editor: Any, settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    version = push("shifty", data, author=editor, filename="s.csv")
    runner.execute(DatasetProfile.objects.get(version=version).job_id)
    return version


def test_diffing_two_versions_reports_rows_schema_and_shift_sorted_by_psi(editor: Any, settings: Any) -> None:
    rng = random.Random(5)
    a = _profiled(_csv([rng.gauss(0, 1) for _ in range(2000)]), editor, settings)
    b = _profiled(_csv([rng.gauss(3, 1) for _ in range(2500)], extra="1"), editor, settings)
    result = diff.diff_versions(a, b)
    assert result["rows"] == {"a": 2000, "b": 2500, "change": 500, "change_pct": 25.0}
    assert result["schema"]["added"] == [{"name": "extra", "type": "int64"}] and result["pending"] == []
    assert (result["a"]["profile"], result["b"]["profile"]) == ("stored", "stored")
    x, colour = result["columns"]
    assert x["name"] == "x" and x["severity"] == "major" and x["ks"] > 0.8
    assert colour["name"] == "colour" and colour["severity"] == "none" and colour["psi"] < 0.01
    same = diff.diff_versions(a, a)
    assert all(row["psi"] == 0.0 for row in same["columns"]) and same["rows"]["change"] == 0


def test_a_missing_profile_is_computed_on_the_spot_for_small_files_and_pending_for_big_ones(
    editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = push("plain", _csv([1.0, 2.0, 3.0]), author=editor, filename="p.csv")
    b = push("plain", _csv([2.0, 3.0, 4.0]), author=editor, filename="p.csv")
    result = diff.diff_versions(a, b)  # neither job ran
    assert (result["a"]["profile"], result["b"]["profile"]) == ("computed", "computed")
    assert [row["name"] for row in result["columns"]] == ["x", "colour"]
    monkeypatch.setattr(diff, "SYNC_PROFILE_MAX_BYTES", 0)
    result = diff.diff_versions(a, b)
    assert result["pending"] == [1, 2] and result["columns"] == []
    assert result["rows"]["change"] == 0 and result["schema"]["unchanged"] == 2  # known without profiles
