"""The plot planner without a database: chunks are summarized in memory the way they are
stored, and `decode` reads them from a dict. Wherever the planner answers with equal-width
buckets it must give exactly the plot of every sample; with buckets on chunk boundaries (one
chunk or a group of chunks each) exactly what decimating every sample of each bucket gives; and
it decodes only the chunks it has to."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aggregator.chunks import Sample, chunk_summary
from aggregator.decimate import decimate, decimate_numeric
from aggregator.store.plot_plan import (
    ChunkSummary,
    Plot,
    bucket_edges,
    chunk_groups,
    plan,
    straddling,
    summary_plan,
)
from protocol import ScalarValue


class Chunks:
    """A tag's chunks in memory: summaries as the database stores them, and a decoder that
    records which chunks it was asked for."""

    def __init__(self, samples: Sequence[Sample], sizes: Sequence[int]) -> None:
        self.parts: dict[int, list[Sample]] = {}
        self.summaries: list[ChunkSummary] = []
        start = 0
        for size in sizes:
            part = list(samples[start : start + size])
            if not part:
                break
            start += size
            chunk_id = len(self.parts) + 1
            self.parts[chunk_id] = part
            self.summaries.append(
                ChunkSummary(chunk_id, part[0][0], part[-1][0], len(part), *_summary(part))
            )
        self.asked: list[int] = []

    def window(self, t0: float, t1: float) -> list[ChunkSummary]:
        return [c for c in self.summaries if c.t_last >= t0 and c.t_first <= t1]

    def plot(
        self,
        recent: Sequence[Sample],
        t0: float,
        t1: float,
        points: int,
        planner: Callable[..., Plot | None] = plan,
    ) -> tuple[Plot | None, list[Sample]]:
        """The planner's answer for [t0, t1] and every sample in it (the plain path's input)."""

        def decode(ids: Sequence[int]) -> Mapping[int, list[Sample]]:
            self.asked.extend(ids)
            return {i: [s for s in self.parts[i] if t0 <= s[0] <= t1] for i in ids}

        chunks = self.window(t0, t1)
        recent = [s for s in recent if t0 <= s[0] <= t1]
        everything = [s for c in chunks for s in self.parts[c.id] if t0 <= s[0] <= t1]
        result = planner(chunks, recent, t0, t1, points, decode)
        assert len(self.asked) == len(set(self.asked)), "a chunk was decoded twice"
        if result is not None:
            assert result[2] == len(self.asked)
        return result, sorted(everything + recent, key=lambda s: s[0])


def _summary(part: Sequence[Sample]) -> tuple[str | None, *tuple[float, ...]]:
    """The summary columns of a chunk row, as the store writes them (0.0 for its NULLs)."""
    s = chunk_summary(part)
    if s["v_kind"] is None:
        return (None,)
    fields = ("v_min", "t_min", "v_max", "t_max", "v_first", "v_last")
    return (str(s["v_kind"]), *(float(s[k]) for k in fields))  # type: ignore[arg-type]


def _plain(samples: Sequence[Sample], points: int) -> tuple[list[float], list[ScalarValue]]:
    return decimate([s[0] for s in samples], [s[1] for s in samples], points)


def _chunk_path(chunks: int, recent: bool, points: int) -> bool:
    return chunks + (1 if recent else 0) >= max(points, 2) // 8


def _grouped(
    store: Chunks, recent: Sequence[Sample], t0: float, t1: float, points: int
) -> tuple[list[float], list[ScalarValue]]:
    """Buckets on chunk boundaries decimated from every sample: each group of chunks as one
    bucket of `decimate_numeric`, the recent rows in the buckets left to them."""
    chunks = store.window(t0, t1)
    inside = [s for s in recent if t0 <= s[0] <= t1]
    parts = [[s for s in store.parts[c.id] if t0 <= s[0] <= t1] for c in chunks]
    total = sum(map(len, parts)) + len(inside)
    groups, left = chunk_groups(chunks, len(inside), total, points)
    by_id = {c.id: part for c, part in zip(chunks, parts, strict=True)}
    picks: list[Sample] = []
    for group in groups:
        bucket = [s for c in group for s in by_id[c.id]]
        if bucket:
            # total: one bucket even of two samples, which would otherwise both be kept
            t, v = [s[0] for s in bucket], [s[1] for s in bucket]
            keep = decimate_numeric(t, v, 2, total=len(bucket) + 2)  # type: ignore[arg-type]
            picks.extend(bucket[i] for i in keep)
    if inside:
        keep = decimate_numeric([s[0] for s in inside], [s[1] for s in inside], 2 * left)  # type: ignore[misc]
        picks.extend(inside[i] for i in keep)
    return [s[0] for s in picks], [s[1] for s in picks]


def _assert_extremes_kept(
    result: Plot, parts: Sequence[Sequence[Sample]], everything: Sequence[Sample], points: int
) -> None:
    dt, dv, _ = result
    assert len(dt) == len(dv) <= max(points, 2)
    assert dt == sorted(dt)
    kept = set(zip(dt, dv, strict=True))
    if any(v != v for _, v in everything):
        return  # NaN: min and max depend on the order they are looked at
    numbers = [v for _, v in everything if v is not None]
    if numbers:
        assert min(numbers) in dv and max(numbers) in dv
    for part in parts:
        values = [s for s in part if s[1] is not None]
        if values:
            assert min(values, key=lambda s: s[1]) in kept  # type: ignore[arg-type,return-value]
            assert max(values, key=lambda s: s[1]) in kept  # type: ignore[arg-type,return-value]


def _gauss(n: int, seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    return [(float(t), round(rng.gauss(0, 10), 3)) for t in range(n)]


# --- which path, and what it decodes -----------------------------------------------------------

CASES = [
    # (name, chunks of 300 s, recent samples, points, window, path, chunks decoded)
    ("few samples: every one kept", 2, 0, 1000, (0.0, 1e9), "plain", 0),
    ("no chunk in the window", 3, 0, 10, (5e5, 6e5), "plain", 0),
    ("a 24 h plot: one bucket per chunk", 39, 100, 100, (0.0, 1e9), "chunks", 0),
    ("the window cuts the first and last chunk", 39, 100, 100, (150.0, 11_000.0), "chunks", 2),
    ("more chunks than buckets: grouped", 40, 0, 20, (0.0, 1e9), "chunks", 0),
    ("groups of uneven size, nothing decoded", 40, 0, 14, (0.0, 1e9), "chunks", 0),
    ("a day at 100 points: groups of chunks", 288, 0, 100, (0.0, 1e9), "chunks", 0),
    ("a day at 100 points, cut at both ends", 288, 250, 100, (150.0, 86_000.0), "chunks", 2),
    ("a zoom: buckets narrower than chunks", 4, 0, 100, (0.0, 1e9), "plain", 0),
]


@pytest.mark.parametrize(
    ("chunks", "recent", "points", "window", "path", "decoded"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_plan_for_each_window(
    chunks: int,
    recent: int,
    points: int,
    window: tuple[float, float],
    path: str,
    decoded: int | None,
) -> None:
    samples = _gauss(chunks * 300 + recent)
    store = Chunks(samples[: chunks * 300], [300] * chunks)
    result, everything = store.plot(samples[chunks * 300 :], *window, points)
    if path == "plain":
        assert result is None
        assert len(store.asked) == decoded
        return
    assert result is not None
    if decoded is not None:
        assert result[2] == decoded
    recent_part = samples[chunks * 300 :]
    assert (result[0], result[1]) == _grouped(store, recent_part, *window, points)
    parts = [
        [s for s in store.parts[c.id] if window[0] <= s[0] <= window[1]]
        for c in store.window(*window)
    ]
    one_each = len(parts) + (recent > 0) <= points // 2
    _assert_extremes_kept(result, parts if one_each else [], everything, points)
    assert len(result[0]) >= min(2 * len(parts), points - 2)  # each bucket: minimum, maximum


def test_text_takes_the_plain_path() -> None:
    samples: list[Sample] = [(float(t), "open" if t % 7 else "shut") for t in range(3000)]
    store = Chunks(samples, [300] * 10)
    assert store.plot([], 0.0, 1e9, 4)[0] is None
    assert store.plot([], 0.0, 1e9, 20)[0] is None


def test_overlapping_chunks_take_the_plain_path() -> None:
    """A late replay stored a chunk over others: only sorting every sample gives the order."""
    samples = _gauss(3000)
    store = Chunks(samples + samples[1000:1300], [300] * 11)
    store.summaries.sort(key=lambda c: c.t_first)
    assert store.plot([], 0.0, 1e9, 8)[0] is None


# --- bucket boundaries -------------------------------------------------------------------------


def test_bucket_edges_are_those_decimation_uses() -> None:
    assert bucket_edges(0.0, 400.0, 4) == [100.0, 200.0, 300.0]
    assert bucket_edges(10.0, 20.0, 1) == []


EDGES = [100.0, 200.0, 300.0]


@pytest.mark.parametrize(
    ("t_first", "t_last", "straddles"),
    [
        (0.0, 99.0, False),  # inside the first bucket
        (50.0, 100.0, True),  # its last sample is on an edge: that one is in the next bucket
        (100.0, 199.0, False),  # starts on an edge: wholly in the second bucket
        (150.0, 250.0, True),
        (250.0, 400.0, True),
        (300.0, 300.0, False),
    ],
)
def test_a_chunk_straddles_when_an_edge_is_after_its_first_sample_and_not_after_its_last(
    t_first: float, t_last: float, straddles: bool
) -> None:
    chunk = ChunkSummary(1, t_first, t_last, 2)
    assert straddling([chunk], EDGES) == ([chunk] if straddles else [])


def test_a_chunk_ending_on_a_bucket_edge_is_decoded() -> None:
    """Four buckets over 0..400 s have edges at 100, 200 and 300 s. The chunk 50..100 s has its
    maximum at 100 s, in the second bucket, and the first bucket's maximum at 75 s: answered by
    its summary the first bucket would lose 75 s. The chunks starting on an edge are not cut."""
    values = {t: float(t % 13) for t in range(401)}
    values[75], values[100] = 50.0, 90.0
    samples: list[Sample] = [(float(t), values[t]) for t in range(401)]
    store = Chunks(samples, [50, 51, 50, 49, 50, 50, 50, 51])
    assert [(c.t_first, c.t_last) for c in store.summaries][1:5] == [
        (50.0, 100.0),
        (101.0, 150.0),
        (151.0, 199.0),
        (200.0, 249.0),
    ]
    result, everything = store.plot([], -1.0, 1e9, 8, summary_plan)
    assert result is not None
    assert store.asked == [2]
    assert (result[0], result[1]) == _plain(everything, 8)
    assert (75.0, 50.0) in zip(result[0], result[1], strict=True)


@settings(max_examples=200, deadline=None)
@given(
    buckets=st.integers(min_value=2, max_value=6),
    width=st.integers(min_value=3, max_value=20),
    sizes=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=60),
    seed=st.integers(min_value=0, max_value=2**32),
    rising=st.booleans(),
    recent=st.integers(min_value=0, max_value=30),
)
def test_chunks_ending_on_bucket_edges_give_the_exact_plot(
    buckets: int, width: int, sizes: list[int], seed: int, rising: bool, recent: int
) -> None:
    """Whole-second samples over buckets * width seconds put bucket edges on sample times,
    and chunk boundaries on them often. In a rising series each bucket's maximum is its last
    sample, so a chunk an edge cuts loses it unless it is decoded."""
    rng = random.Random(seed)
    samples: list[Sample] = [
        (float(t), float(t if rising else rng.randint(-50, 50))) for t in range(buckets * width + 1)
    ]
    cut = max(1, len(samples) - recent)
    store = Chunks(samples[:cut], [*sizes, len(samples)])
    result, everything = store.plot(samples[cut:], -1.0, 1e9, 2 * buckets, summary_plan)
    if result is not None:
        assert (result[0], result[1]) == _plain(everything, 2 * buckets)


# --- any series --------------------------------------------------------------------------------


@st.composite
def series(draw: st.DrawFn) -> tuple[list[Sample], list[int], int]:
    n = draw(st.one_of(st.integers(min_value=1, max_value=400), st.integers(600, 2500)))
    kind = draw(st.sampled_from(["float", "int", "gaps", "text", "few", "nan"]))
    steps = draw(st.lists(st.sampled_from([0.25, 1.0, 1.0, 1.000001, 7.5]), min_size=1, max_size=5))
    t = 1_700_000_000.123457
    out: list[Sample] = []
    value = 0
    for i in range(n):
        t += steps[i % len(steps)]
        value += draw(st.integers(min_value=-3, max_value=3)) if i % 97 == 0 else (i % 5) - 2
        v: ScalarValue
        if kind == "int":
            v = value
        elif kind == "few":
            v = float(value % 4)  # many equal extremes: the first occurrence must win
        elif kind == "gaps" and i % 50 < 3:
            v = None
        elif kind == "text" and i % 400 == 7:
            v = "jammed"
        elif kind == "nan" and i % 300 == 11:
            v = float("nan")
        else:
            v = value / 100
        out.append((round(t * 1e6) / 1e6, v))
    sizes = draw(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=8))
    recent = draw(st.integers(min_value=0, max_value=min(n, 400)))
    return out, sizes * (n // sum(sizes) + 1), recent


@settings(max_examples=300, deadline=None)
@given(
    data=series(),
    points=st.one_of(
        st.integers(min_value=2, max_value=12), st.integers(min_value=2, max_value=300)
    ),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_the_plan_is_the_plot_of_every_sample(
    data: tuple[list[Sample], list[int], int], points: int, window: tuple[float, float]
) -> None:
    samples, sizes, recent = data
    cut = len(samples) - recent
    first, last = samples[0][0], samples[-1][0]
    a, b = sorted(window)
    for t0, t1 in ((first - 1, last + 1), (first + a * (last - first), first + b * (last - first))):
        store = Chunks(samples[:cut], sizes)
        result, everything = store.plot(samples[cut:], t0, t1, points)
        chunks = store.window(t0, t1)
        event("plain" if result is None else "groups" if len(chunks) > points // 2 else "chunks")
        if result is None:
            continue  # the plain path: decimate(everything) by definition
        has_recent = any(t0 <= s[0] <= t1 for s in samples[cut:])
        if _chunk_path(len(chunks), has_recent, points):
            expected = _grouped(store, samples[cut:], t0, t1, points)
            assert (result[0], result[1]) == expected
            assert [type(x) for x in result[1]] == [type(x) for x in expected[1]]
            parts = [[s for s in store.parts[c.id] if t0 <= s[0] <= t1] for c in chunks]
            one_each = len(parts) + has_recent <= max(points, 2) // 2
            _assert_extremes_kept(result, parts if one_each else [], everything, points)
        else:
            assert (result[0], result[1]) == _plain(everything, points)
            assert [type(x) for x in result[1]] == [type(x) for x in _plain(everything, points)[1]]


def test_summary_plan_needs_no_decoding_when_no_chunk_is_cut() -> None:
    """100 chunks of 300 s (0..29999 s), 10 buckets: each edge (2999.9 s, ...) falls between
    two chunks, so none is decoded, and the answer is still exact."""
    samples = _gauss(30_000)
    store = Chunks(samples, [300] * 100)
    decoded: list[int] = []

    def decode(ids: Sequence[int]) -> Mapping[int, list[Sample]]:
        decoded.extend(ids)
        return {i: store.parts[i] for i in ids}

    result = summary_plan(store.summaries, [], -1.0, 1e9, 20, decode)
    assert result is not None
    assert (result[0], result[1]) == _plain(samples, 20)
    assert decoded == []
