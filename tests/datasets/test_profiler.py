"""The streaming profiler against reference values computed here, in plain Python (no numpy, no pandas)."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.profiler import QUANTILE_KEYS, ProfileOptions, profile_file
from datasets.sketches import BottomKSample, KMVSketch, hash_array

QUANTILE_POINTS = [1, 5, 25, 50, 75, 95, 99]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sample_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": i,
                "age": None if i % 11 == 0 else rng.randint(18, 90),
                "score": round(rng.gauss(10.0, 3.0), 6),
                "colour": rng.choice(["red", "green", "blue", "red", "red", "green"]),
                "flag": None if i % 7 == 0 else rng.random() < 0.3,
            }
        )
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    names = list(rows[0])
    return ",".join(names) + "\n" + "".join(",".join(cell(r[n]) for n in names) + "\n" for r in rows)


def column(profile: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in profile["columns"] if c["name"] == name)


def reference_quantiles(values: list[float]) -> dict[str, float]:
    # statistics' "inclusive" method is linear interpolation between order statistics: numpy's default.
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {f"p{p}": cuts[p - 1] for p in QUANTILE_POINTS}


@pytest.fixture
def small_csv(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    rows = sample_rows(500)
    return write(tmp_path / "small.csv", to_csv(rows)), rows


def test_numeric_columns_match_hand_computed_statistics(small_csv: tuple[Path, list[dict[str, Any]]]) -> None:
    path, rows = small_csv
    profile = profile_file(path, "csv")
    assert profile["rows"] == 500 and [c["name"] for c in profile["columns"]] == list(rows[0])
    for name in ["age", "score"]:
        values = [r[name] for r in rows if r[name] is not None]
        got = column(profile, name)
        assert got["kind"] == "numeric"
        assert got["nulls"] == 500 - len(values) and got["non_null"] == len(values)
        assert got["distinct"] == len(set(values)) and got["distinct_exact"] is True
        assert got["min"] == min(values) and got["max"] == max(values)
        assert got["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert got["std"] == pytest.approx(statistics.stdev(values), rel=1e-9)
        assert got["quantiles_exact"] is True
        expected = reference_quantiles(values)
        for key in QUANTILE_KEYS:
            assert got["quantiles"][key] == pytest.approx(expected[key], rel=1e-9), key
        histogram = got["histogram"]
        assert sum(histogram["counts"]) == len(values)
        assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert len(column(profile, "age")["histogram"]["counts"]) == 30  # 18 to 90: wider than 30 integers
    score = column(profile, "score")
    assert len(score["histogram"]["counts"]) == 30
    assert score["histogram"]["edges"][0] == score["min"] and score["histogram"]["edges"][-1] == score["max"]
    lo, width = score["min"], (score["max"] - score["min"]) / 30
    by_hand = Counter(min(int((r["score"] - lo) / width), 29) for r in rows)
    assert score["histogram"]["counts"] == [by_hand.get(i, 0) for i in range(30)]


def test_integer_columns_with_a_narrow_range_get_one_bin_per_integer(tmp_path: Path) -> None:
    path = write(tmp_path / "dice.csv", "die\n" + "".join(f"{(i * 7) % 6 + 1}\n" for i in range(600)))
    die = column(profile_file(path, "csv"), "die")
    assert die["histogram"]["edges"] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
    assert die["histogram"]["counts"] == [100] * 6


def test_text_and_boolean_columns_get_exact_top_values(small_csv: tuple[Path, list[dict[str, Any]]]) -> None:
    path, rows = small_csv
    profile = profile_file(path, "csv")
    colour = column(profile, "colour")
    counts = Counter(r["colour"] for r in rows)
    assert colour["kind"] == "categorical" and colour["type"] == "string"
    assert colour["top"] == [
        {"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    assert colour["top_exact"] is True and colour["distinct"] == 3 and colour["nulls"] == 0
    assert (colour["min_length"], colour["max_length"]) == (3, 5)
    flag = column(profile, "flag")
    flags = Counter("true" if r["flag"] else "false" for r in rows if r["flag"] is not None)
    assert flag["type"] == "bool" and flag["nulls"] == sum(1 for r in rows if r["flag"] is None)
    assert {t["value"]: t["count"] for t in flag["top"]} == dict(flags)


def test_a_tiny_block_size_gives_the_same_profile_as_one_block(tmp_path: Path) -> None:
    rows = sample_rows(3000, seed=3)
    path = write(tmp_path / "rows.csv", to_csv(rows))
    whole = profile_file(path, "csv", options=ProfileOptions(block_bytes=64 * 1024 * 1024))
    chunked = profile_file(path, "csv", options=ProfileOptions(block_bytes=2048))
    assert whole["reader"]["blocks"] == 2 and chunked["reader"]["blocks"] > 40  # one per pass, and many
    for name in ["age", "score", "colour", "flag", "id"]:
        a, b = column(whole, name), column(chunked, name)
        for key in set(a) | set(b):
            if key in ("mean", "std"):
                assert a[key] == pytest.approx(b[key], rel=1e-12), (name, key)
            elif key == "quantiles" and a[key] is not None:
                assert a[key] == pytest.approx(b[key], rel=1e-12)
            else:
                assert a[key] == b[key], (name, key)


def test_the_reader_never_materialises_more_than_a_block_of_rows(tmp_path: Path) -> None:
    # 40,000 rows of at least 12 bytes each; blocks of 16 KiB hold at most ~1,400 of them.
    path = write(tmp_path / "big.csv", "id,value\n" + "".join(f"{i:06d},{i % 97}.25\n" for i in range(40_000)))
    assert path.stat().st_size > 400_000
    seen: list[int] = []
    profile = profile_file(
        path, "csv", options=ProfileOptions(block_bytes=16 * 1024), on_batch=lambda b: seen.append(b.num_rows)
    )
    assert profile["rows"] == 40_000
    assert max(seen) <= 16 * 1024 // 12 and len(seen) > 2 * 25  # both passes read in blocks
    assert profile["reader"] == {"blocks": len(seen), "max_block_rows": max(seen)}


def test_progress_counts_bytes_over_both_passes_up_to_the_total(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "a,b\n" + "".join(f"{i},x{i % 5}\n" for i in range(20_000)))
    size = path.stat().st_size
    calls: list[tuple[int, int, str]] = []
    profile_file(
        path,
        "csv",
        options=ProfileOptions(block_bytes=8 * 1024, progress_interval=0),
        progress=lambda done, total, message: calls.append((done, total, message)),
    )
    assert len(calls) > 10
    assert {total for _, total, _ in calls} == {2 * size}  # one numeric column: two passes
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and done[-1] == 2 * size
    assert calls[0][2].startswith("pass 1 of 2") and calls[-1][2].startswith("pass 2 of 2")


def test_beyond_the_caps_distinct_counts_and_quantiles_are_approximate_and_say_so(tmp_path: Path) -> None:
    rng = random.Random(1)
    values = [rng.random() * 1000 for _ in range(30_000)]
    path = write(tmp_path / "wide.csv", "x,name\n" + "".join(f"{v!r},user{i}\n" for i, v in enumerate(values)))
    options = ProfileOptions(block_bytes=64 * 1024, distinct_cap=1000, sample_size=1000)
    profile = profile_file(path, "csv", options=options)
    x, name = column(profile, "x"), column(profile, "name")
    assert x["distinct_exact"] is False and x["distinct"] == pytest.approx(30_000, rel=0.06)
    assert name["distinct_exact"] is False and name["distinct"] == pytest.approx(30_000, rel=0.06)
    assert name["top_exact"] is False
    assert x["quantiles_exact"] is False and x["quantiles_sample"] == 1000
    exact = reference_quantiles(values)
    assert x["quantiles"]["p50"] == pytest.approx(exact["p50"], abs=50)  # a 1,000-value sample of U(0, 1000)
    assert x["mean"] == pytest.approx(statistics.fmean(values), rel=1e-9)  # moments stay exact
    assert "KMV" in profile["method"]["distinct"] and "sample" in profile["method"]["quantiles"]


def test_parquet_and_json_lines_give_the_same_profile_as_csv(tmp_path: Path) -> None:
    rows = sample_rows(400, seed=11)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=64)
    write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write(tmp_path / "t.csv", to_csv(rows))
    profiles = {
        fmt: profile_file(tmp_path / f"t.{ext}", fmt, options=ProfileOptions(block_bytes=4096))
        for fmt, ext in [("csv", "csv"), ("parquet", "parquet"), ("jsonl", "jsonl")]
    }
    for fmt in ["parquet", "jsonl"]:
        assert profiles[fmt]["rows"] == 400
        for name in ["age", "score", "colour"]:
            a, b = column(profiles["csv"], name), column(profiles[fmt], name)
            assert (a["kind"], a["nulls"], a["distinct"]) == (b["kind"], b["nulls"], b["distinct"])
            if a["kind"] == "numeric":
                assert (a["min"], a["max"], a["histogram"]) == (b["min"], b["max"], b["histogram"])
                assert a["mean"] == pytest.approx(b["mean"])
            else:
                assert a["top"] == b["top"]
    assert profiles["parquet"]["reader"]["blocks"] > 1


def test_non_finite_floats_are_counted_and_left_out_of_the_statistics(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, float("nan"), 3.0, float("inf"), None]}), tmp_path / "n.parquet")
    x = column(profile_file(tmp_path / "n.parquet", "parquet"), "x")
    assert (x["nulls"], x["non_finite"], x["min"], x["max"], x["mean"]) == (1, 2, 1.0, 3.0, 2.0)
    assert sum(x["histogram"]["counts"]) == 2
    json.dumps(x, allow_nan=False)


def test_an_all_null_column_and_a_date_column_are_profiled_without_statistics(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "day,empty\n2024-01-02,\n2024-03-04,\n2023-12-31,\n")
    profile = profile_file(path, "csv")
    day, empty = column(profile, "day"), column(profile, "empty")
    assert day["kind"] == "temporal" and (day["min"], day["max"], day["distinct"]) == ("2023-12-31", "2024-03-04", 3)
    assert empty["nulls"] == 3 and empty["kind"] == "other"


def test_the_kmv_sketch_and_the_sample_behave_as_documented() -> None:
    sketch = KMVSketch(k=1024)
    values = pa.array([f"value-{i}" for i in range(50_000)])
    sketch.add(hash_array(values))
    sketch.add(hash_array(values.slice(100, 5000)))  # repeats change nothing
    assert sketch.estimate() == pytest.approx(50_000, rel=4 * sketch.relative_error)
    small = KMVSketch(k=1024)
    small.add(hash_array(pa.array([1.5, 2.5, 1.5, -0.0, 0.0])))
    assert small.estimate() == 3
    one = BottomKSample(100, seed=1)
    for start in range(0, 1000, 7):
        one.add(pa.array(range(start, min(start + 7, 1000)), pa.float64()).to_numpy())
    other = BottomKSample(100, seed=1)
    other.add(pa.array(range(1000), pa.float64()).to_numpy())
    assert sorted(one.values.tolist()) == sorted(other.values.tolist()) and len(one.values) == 100
    assert not one.exact and math.isclose(one.seen, 1000)
