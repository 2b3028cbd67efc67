"""LTTB downsampling of metric series: exact when short, shape-keeping when long, safe with NaN and ±inf."""

from __future__ import annotations

import math
import random
import time

import pytest

from experiments.downsample import lttb


def test_a_series_at_or_under_the_threshold_comes_back_exactly() -> None:
    xs, ys = [0, 1, 2, 5], [0.5, math.nan, math.inf, -1.0]
    out_x, out_y = lttb(xs, ys, 4)
    assert out_x == xs and out_y[0] == 0.5 and math.isnan(out_y[1]) and out_y[2:] == [math.inf, -1.0]
    assert lttb(xs, ys, 1000)[0] == xs
    assert lttb([], [], 10) == ([], [])


def test_a_long_series_is_cut_to_exactly_the_threshold_keeping_first_and_last() -> None:
    xs = list(range(10_000))
    ys = [math.sin(x / 50) for x in xs]
    out_x, out_y = lttb(xs, ys, 300)
    assert len(out_x) == len(out_y) == 300
    assert (out_x[0], out_x[-1]) == (0, 9_999) and (out_y[0], out_y[-1]) == (ys[0], ys[-1])
    assert out_x == sorted(set(out_x))  # strictly increasing: one point per bucket, in order
    assert all(ys[x] == y for x, y in zip(out_x, out_y, strict=True))  # real points, not averages


def test_a_lone_spike_survives_where_every_nth_point_would_lose_it() -> None:
    xs = list(range(100_000))
    ys = [0.0] * 100_000
    ys[54_321] = 42.0
    out_x, out_y = lttb(xs, ys, 100)
    assert 54_321 in out_x and max(out_y) == 42.0


def test_it_follows_the_reference_algorithm_on_a_small_example() -> None:
    # Threshold 5 splits the 8 inner points into buckets [1, 2] [3, 4, 5] [6, 7, 8]; each keeps its largest triangle.
    xs = list(range(10))
    ys = [0.0, 1.0, 5.0, 1.0, 0.0, -4.0, 0.0, 0.0, 3.0, 0.0]
    assert lttb(xs, ys, 5) == ([0, 2, 5, 8, 9], [0.0, 5.0, -4.0, 3.0, 0.0])


def test_nan_and_infinite_points_are_left_out_of_a_downsampled_series() -> None:
    xs = list(range(1_000))
    ys = [math.nan if x % 10 == 0 else (math.inf if x % 10 == 5 else float(x % 7)) for x in xs]
    out_x, out_y = lttb(xs, ys, 100)
    assert len(out_x) == 100 and all(math.isfinite(y) for y in out_y)
    assert (out_x[0], out_x[-1]) == (1, 999)  # the first and last finite points


def test_a_series_of_only_nan_downsamples_to_nothing_without_crashing() -> None:
    assert lttb(list(range(50)), [math.nan] * 50, 10) == ([], [])
    assert lttb(list(range(50)), [math.nan] * 48 + [1.0, 2.0], 10) == ([48, 49], [1.0, 2.0])


def test_tiny_thresholds_keep_the_ends() -> None:
    xs, ys = list(range(10)), [float(x) for x in range(10)]
    assert lttb(xs, ys, 0) == ([], [])
    assert lttb(xs, ys, 1) == ([0], [0.0])
    assert lttb(xs, ys, 2) == ([0, 9], [0.0, 9.0])
    assert len(lttb(xs, ys, 3)[0]) == 3


def test_mismatched_or_negative_input_is_refused() -> None:
    with pytest.raises(ValueError):
        lttb([1, 2], [1.0], 10)
    with pytest.raises(ValueError):
        lttb([1], [1.0], -1)


def test_a_million_points_downsample_in_well_under_a_second() -> None:
    rng = random.Random(7)
    xs = list(range(1_000_000))
    ys = [math.sin(x / 5_000) + rng.random() * 0.1 for x in xs]
    started = time.perf_counter()
    out_x, _ = lttb(xs, ys, 1_000)
    elapsed = time.perf_counter() - started
    assert len(out_x) == 1_000
    # About 0.15 s on an idle machine; the bound leaves room for a busy CI runner while still
    # catching a Python-level call per point or a quadratic slip.
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    ys[500_000] = math.nan  # the masking path for non-finite values is still fast enough
    started = time.perf_counter()
    lttb(xs, ys, 1_000)
    assert time.perf_counter() - started < 1.5
