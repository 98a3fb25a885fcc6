"""Decimation keeps every peak and trough and never exceeds the point budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.decimate import changes, decimate, decimate_numeric, window

values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000))


@st.composite
def series(draw: st.DrawFn) -> tuple[list[float], list[float | int | None]]:
    steps = draw(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=0, max_size=400))
    t: list[float] = []
    now = 1_700_000_000.0
    for step in steps:
        now += step
        t.append(now)
    v = draw(st.lists(values, min_size=len(t), max_size=len(t)))
    return t, v


@settings(max_examples=200, deadline=None)
@given(series(), st.integers(2, 60))
def test_budget_order_and_extremes(
    data: tuple[list[float], list[float | int | None]], points: int
) -> None:
    t, v = data
    idx = decimate_numeric(t, v, points)
    assert len(idx) <= max(points, 2)
    assert idx == sorted(set(idx))
    assert all(0 <= i < len(t) for i in idx)
    numbers = [x for x in v if x is not None]
    kept = [v[i] for i in idx]
    if numbers:
        assert max(numbers) in kept
        assert min(numbers) in kept
    if len(t) <= points:
        assert idx == list(range(len(t)))


@settings(max_examples=100, deadline=None)
@given(series(), st.integers(2, 60))
def test_every_dropped_sample_is_bracketed_nearby(
    data: tuple[list[float], list[float | int | None]], points: int
) -> None:
    """A dropped value never sticks out: within one bucket width some kept value is at least as
    high and some at most as low, so the plot's envelope covers it."""
    t, v = data
    idx = decimate_numeric(t, v, points)
    if len(t) <= points:
        return
    width = (t[-1] - t[0]) / (points // 2) + 1e-6
    kept = [(t[i], k) for i in idx if (k := v[i]) is not None]
    for i, x in enumerate(v):
        if x is None or i in idx:
            continue
        near = [k for tk, k in kept if abs(tk - t[i]) <= width]
        assert any(k >= x for k in near)
        assert any(k <= x for k in near)


def test_spike_survives() -> None:
    t = [float(i) for i in range(86_400)]
    v: list[float | int | None] = [1.0] * 86_400
    v[12_345] = 99.0
    v[54_321] = -99.0
    td, vd = decimate(t, v, 1000)
    assert len(td) <= 1000
    assert 99.0 in vd and -99.0 in vd
    assert td[vd.index(99.0)] == 12_345.0


def test_gap_bucket_keeps_a_marker() -> None:
    t = [float(i) for i in range(100)]
    v: list[float | int | None] = [1.0] * 40 + [None] * 20 + [2.0] * 40
    _, vd = decimate(t, v, 10)
    assert None in vd


@given(st.lists(st.sampled_from(["Open", "Closed", None, True]), max_size=100))
def test_categorical_keeps_every_change(v: list[str | bool | None]) -> None:
    idx = changes(v)
    rebuilt: list[str | bool | None] = []
    for i in range(len(v)):
        last = max(j for j in idx if j <= i) if idx else None
        rebuilt.append(v[last] if last is not None else None)
    assert rebuilt == v


def test_text_series_keeps_changes_not_buckets() -> None:
    t = [float(i) for i in range(5000)]
    v = ["A" if (i // 7) % 2 else "B" for i in range(5000)]
    td, _vd = decimate(t, v, 10)
    assert len(td) == len(changes(v))


def test_window() -> None:
    t = [1.0, 2.0, 3.0, 4.0]
    assert window(t, 2.0, 3.0) == (1, 3)
    assert window(t, None, None) == (0, 4)
    assert window(t, 5.0, 1.0) == (4, 4)
