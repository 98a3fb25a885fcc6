"""Server-side decimation of plot series to screen resolution.

A 24-hour run at 1 s holds 86,400 values per tag, far more than a plot has pixels, so the server
sends at most `points` per series. Averaging would hide the spikes an operator is looking for, so
the window is cut into `points // 2` time buckets and each keeps its minimum and its maximum: every
peak and every trough survives. Text (categorical) series keep every change instead, because a
valve position that flickered for one second matters as much as one that stayed for an hour.

Pure functions over sorted sequences; the slicing keeps the per-bucket work in C (`min`, `max`,
`list.index`) because pure-Python loops over millions of samples would blow the plot budget.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from protocol import ScalarValue

DEFAULT_POINTS = 1000
NUMERIC_TYPES = frozenset({int, float, type(None)})


def is_numeric(value: ScalarValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def window(t: Sequence[float], start: float | None, end: float | None) -> tuple[int, int]:
    """Index range [lo, hi) of the samples with start <= t <= end (t sorted ascending)."""
    lo = 0 if start is None else bisect_left(t, start)
    hi = len(t) if end is None else bisect_right(t, end)
    return lo, max(lo, hi)


def decimate_numeric(
    t: Sequence[float],
    v: Sequence[float | None],
    points: int = DEFAULT_POINTS,
    total: int | None = None,
) -> list[int]:
    """Indices (ascending) of the samples to keep: each bucket's minimum and maximum.

    `t` is sorted ascending; `None` values are gaps: a bucket with no number keeps one gap marker
    so the plot shows the hole instead of drawing a line across it. At most `points` indices are
    returned (at least 2 are allowed, so a single peak and trough always fit).

    `total`: how many samples the series really has when `t`/`v` is a subsequence that keeps,
    for every stretch left out, its first occurrences of minimum and maximum and which lies in
    one bucket (the summary path of Storage.read_decimated); the buckets depend only on the
    first and last time, so the answer is the same as for the full series.
    """
    n = len(t)
    points = max(points, 2)
    if (n if total is None else total) <= points:
        return list(range(n))
    buckets = points // 2
    t0, t1 = t[0], t[-1]
    span = t1 - t0
    keep: list[int] = []
    lo = 0
    for b in range(buckets):
        if b == buckets - 1:
            hi = n
        elif span > 0:
            hi = bisect_left(t, t0 + span * (b + 1) / buckets, lo)
        else:
            hi = n * (b + 1) // buckets
        if hi <= lo:
            continue
        segment = v[lo:hi]
        numbers: Sequence[float | None] = segment
        offset_map: list[int] | None = None
        if None in segment:
            offset_map = [i for i, x in enumerate(segment) if x is not None]
            if not offset_map:
                keep.append(lo)
                lo = hi
                continue
            numbers = [segment[i] for i in offset_map]
        smallest = min(numbers)  # type: ignore[type-var]
        largest = max(numbers)  # type: ignore[type-var]
        i_min = numbers.index(smallest)
        i_max = numbers.index(largest)
        if offset_map is not None:
            i_min, i_max = offset_map[i_min], offset_map[i_max]
        if i_min == i_max:
            keep.append(lo + i_min)
        else:
            keep.extend(sorted((lo + i_min, lo + i_max)))
        lo = hi
    return keep


def changes(v: Sequence[ScalarValue]) -> list[int]:
    """Indices where a categorical value differs from the one before (the first always counts)."""
    keep: list[int] = []
    previous: object = object()
    for i, value in enumerate(v):
        if value != previous or type(value) is not type(previous):
            keep.append(i)
            previous = value
    return keep


def decimate(
    t: Sequence[float], v: Sequence[ScalarValue], points: int = DEFAULT_POINTS
) -> tuple[list[float], list[ScalarValue]]:
    """Decimate one series: min/max buckets for numbers, every change for anything else."""
    numeric = set(map(type, v)) <= NUMERIC_TYPES  # C-speed scan; bool is not a number here
    idx = decimate_numeric(t, v, points) if numeric else changes(v)  # type: ignore[arg-type]
    return [t[i] for i in idx], [v[i] for i in idx]
