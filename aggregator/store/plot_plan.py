"""The plot planner: a tag's plot from its chunk summaries, decoding as few chunks as it can.

Decoding chunks is what makes a plot slow (~0.4 ms each, 288 per tag-day), so:

- when the window holds at least points/8 chunks (with the recent rows counting as one more),
  the buckets lie on chunk boundaries (`chunk_buckets`): one chunk per bucket while there are
  no more than points/2, else consecutive chunks grouped by time into points/2 buckets. Each
  bucket keeps the minimum and maximum its chunks' stored summaries give; only the chunks cut
  by the window's edges, chunks without a summary and the recent rows (given their share of the
  buckets) are decoded. Equal-width buckets would cut chunks at nearly every edge, and each cut
  chunk would have to be decoded. Fewer chunks than points/8 (a zoom) are decoded: that is
  cheap, and chunk buckets would show a zoomed-in window at a fraction of the asked resolution.
- otherwise `summary_plan` tries equal-width buckets wider than a chunk, where the answer is
  exactly `decimate(samples in the window)` with most chunks answered by their summary.

Anything unusual (a text series, few samples, overlapping chunks, NaN) gets None: the caller
takes the plain path, decimating every sample, which is the definition. Pure functions over
summary rows; the only reads are through the `decode` callable the caller passes.
"""

from __future__ import annotations

import itertools
import operator
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import NamedTuple, cast

from aggregator.chunks import Sample
from aggregator.decimate import NUMERIC_TYPES, decimate_numeric
from protocol import ScalarValue


class ChunkSummary(NamedTuple):
    """What a plot reads of a chunk row instead of its blob: its span and size and the stored
    summary (aggregator.chunks.chunk_summary): kind "f" or "i", minimum and maximum with the
    time of their first occurrence, first and last value.

    A flat NamedTuple made straight from the row (`_make`): 28,800 are built for a day of 100
    tags, and a nested summary object per row cost more than reading the rows."""

    id: int
    t_first: float
    t_last: float
    size: int
    """How many samples the chunk holds."""
    kind: str | None = None
    """None for text, booleans, gaps or NaN: such a chunk is decoded to be plotted, and the
    fields below are not read (the row holds NULLs)."""
    v_min: float = 0.0
    t_min: float = 0.0
    v_max: float = 0.0
    t_max: float = 0.0
    v_first: float = 0.0
    v_last: float = 0.0


Plot = tuple[list[float], list[ScalarValue], int]
"""Times, values, and how many chunks were decoded."""

Decode = Callable[[Sequence[int]], Mapping[int, list[Sample]]]
"""The samples inside the plotted window of the chunks asked for, by chunk id."""


def plan(
    chunks: Sequence[ChunkSummary],
    recent: Sequence[Sample],
    t0: float,
    t1: float,
    points: int,
    decode: Decode,
) -> Plot | None:
    """The plot of [t0, t1] from the window's chunks (time order) and not yet compacted samples,
    or None when decimating every sample is the way (see the module docstring)."""
    if not chunks:
        return None
    if sum(map(_SIZE, chunks)) + len(recent) <= points:
        return None  # every sample is kept: nothing to save
    if len(chunks) + (1 if recent else 0) >= max(points, 2) // 8:
        return chunk_buckets(chunks, recent, t0, t1, points, decode)
    return summary_plan(chunks, recent, t0, t1, points, decode)


def chunk_buckets(
    chunks: Sequence[ChunkSummary],
    recent: Sequence[Sample],
    t0: float,
    t1: float,
    points: int,
    decode: Decode,
) -> Plot | None:
    """Buckets on chunk boundaries, each keeping its minimum and maximum; None when the series
    is not numeric, the window holds no more than `points` samples, or stretches overlap.

    With no more than `points / 2` chunks each chunk is a bucket; with more, consecutive chunks
    are grouped by time into `points / 2` buckets (less the recent rows' share) and a group's
    extremes are the least and greatest of its chunks' stored ones, the earliest on a tie: the
    same samples `decimate_numeric` keeps for a bucket of exactly those chunks. So a day plotted
    at 100 points decodes only the chunks the window cuts, like one at 1000."""
    if all(c.kind is None for c in chunks):
        return None  # text or gaps throughout: decoded anyway, and maybe categorical
    if recent and max(points, 2) // 2 < 2:
        return None  # one bucket cannot be shared between the chunks and the recent rows
    if _overlapping(chunks):
        return None  # a late replay stored a chunk over others: only a full sort gives the order
    decoded: dict[int, list[Sample]] = {}
    _decode_into(decode, _must_decode(chunks, t0, t1), decoded)
    values = [v for part in decoded.values() for _, v in part] + [v for _, v in recent]
    if not set(map(type, values)) <= NUMERIC_TYPES or any(v != v for v in values):
        return None  # text (or booleans) keep every change; NaN makes min/max order-dependent
    total = len(values) + sum(map(_SIZE, chunks))
    total -= sum(c.size for c in chunks if c.id in decoded) if decoded else 0
    if total <= points:
        return None  # the window cut the chunks down to few samples: keep every one
    if recent and chunks[-1].t_last >= recent[0][0]:
        return None  # recent rows among compacted ones (a late replay)
    groups, left = chunk_groups(chunks, len(recent), total, points)
    picks: list[Sample] = []
    for group in groups:
        group_picks = _group_extremes(group, decoded)
        if group_picks is None:
            return None  # a minimum and maximum at one time: their order is in the blob only
        picks.extend(group_picks)
    if recent:
        keep = decimate_numeric([s[0] for s in recent], _numbers(recent), 2 * left)
        picks.extend(recent[i] for i in keep)
    return [s[0] for s in picks], [s[1] for s in picks], len(decoded)


def chunk_groups(
    chunks: Sequence[ChunkSummary], recent: int, total: int, points: int
) -> tuple[list[list[ChunkSummary]], int]:
    """The chunks (time order) cut into consecutive groups, one per bucket, and how many
    buckets are left for the `recent` rows.

    One chunk per bucket while they fit beside the recent rows; otherwise the recent rows get
    buckets in proportion to their share of the `total` samples (at least one) and the chunks
    are grouped by where their first sample falls among equal stretches of their time span."""
    buckets = max(points, 2) // 2
    if len(chunks) + (1 if recent else 0) <= buckets:
        return [[c] for c in chunks], buckets - len(chunks)
    left = min(buckets - 1, max(1, buckets * recent // total)) if recent else 0
    wanted = buckets - left
    low, span = chunks[0].t_first, chunks[-1].t_first - chunks[0].t_first
    if span <= 0:
        return [list(chunks)], left
    top = wanted - 1
    keys = [min(top, int((c.t_first - low) * wanted / span)) for c in chunks]
    groups = [
        [c for _, c in g]
        for _, g in itertools.groupby(zip(keys, chunks, strict=True), itemgetter(0))
    ]
    return groups, left


def _group_extremes(
    group: Sequence[ChunkSummary], decoded: Mapping[int, list[Sample]]
) -> list[Sample] | None:
    """A bucket's first minimum and first maximum in time order (one if the same sample), from
    its chunks' summaries or decoded parts; a bucket without numbers keeps its first sample (a
    gap marker), as `decimate_numeric` does. None: the order of two picks is unknown."""
    if len(group) == 1 and group[0].id not in decoded:
        return _summary_extremes(group[0])  # the usual bucket: one summarized chunk
    low: Sample | None = None
    high: Sample | None = None
    gap: Sample | None = None
    for c in group:
        part = decoded.get(c.id)
        if part is None:  # a summarized chunk (every other one was decoded)
            # Strictly less / greater: on a tie the earlier chunk's sample stays, as in min().
            if low is None or c.v_min < low[1]:  # type: ignore[operator]
                low = (c.t_min, int(c.v_min) if c.kind == "i" else c.v_min)
            if high is None or c.v_max > high[1]:  # type: ignore[operator]
                high = (c.t_max, int(c.v_max) if c.kind == "i" else c.v_max)
            continue
        numbers = [s for s in part if s[1] is not None]
        if not numbers:
            gap = gap or (part[0] if part else None)
            continue
        c_low = min(numbers, key=_value)  # the first of equal values, as decimation keeps
        c_high = max(numbers, key=_value)
        if low is None or _value(c_low) < _value(low):
            low = c_low
        if high is None or _value(c_high) > _value(high):
            high = c_high
    if low is None or high is None:
        return [] if gap is None else [gap]
    if low[0] == high[0]:
        return [low] if low[1] == high[1] else None
    return [low, high] if low[0] < high[0] else [high, low]


def _summary_extremes(c: ChunkSummary) -> list[Sample] | None:
    """`_group_extremes` of a bucket that is one summarized chunk."""
    low = (c.t_min, int(c.v_min) if c.kind == "i" else c.v_min)
    high = (c.t_max, int(c.v_max) if c.kind == "i" else c.v_max)
    if low[0] == high[0]:
        return [low] if low[1] == high[1] else None
    return [low, high] if low[0] < high[0] else [high, low]


def _value(sample: Sample) -> float:
    return cast(float, sample[1])


def summary_plan(
    chunks: Sequence[ChunkSummary],
    recent: Sequence[Sample],
    t0: float,
    t1: float,
    points: int,
    decode: Decode,
) -> Plot | None:
    """Exactly `decimate(samples in [t0, t1])` with equal-width buckets, from summaries.

    A chunk whose summary lies wholly inside one decimation bucket is represented by its
    first, minimum, maximum and last samples instead of being decoded: the bucket keeps its
    first occurrences of minimum and maximum, and those are among them. Chunks reaching over
    the window's edges or a bucket edge, chunks without a summary (text, gaps), and the
    recent rows are read sample by sample. None: take the plain path (overlapping chunks,
    a text series, NaN)."""
    buckets = max(points, 2) // 2
    low = max(t0, chunks[0].t_first)
    high = min(t1, recent[-1][0] if recent else chunks[-1].t_last)
    if 2 * len(straddling(chunks, bucket_edges(low, high, buckets))) > len(chunks):
        return None  # buckets narrower than chunks: nearly all would be decoded anyway
    # Bucket edges need the window's first and last sample times, which partial chunks at
    # the window's edges only give when decoded.
    decoded: dict[int, list[Sample]] = {}
    _decode_into(decode, [c.id for c in chunks if _cut_or_bare(c, t0, t1)], decoded)
    segments = _segments(chunks, decoded, recent)
    if segments is None:
        return None  # overlapping stretches: only a full sort gives the order
    values = [v for part in decoded.values() for _, v in part] + [v for _, v in recent]
    if not set(map(type, values)) <= NUMERIC_TYPES or any(v != v for v in values):
        return None  # text series keep every change; NaN makes min/max order-dependent
    total = sum(c.size for c in chunks if c.id not in decoded)
    total += sum(len(p) for p in decoded.values()) + len(recent)
    if total <= points or not segments:
        return None
    first, last = segments[0][0], segments[-1][1]
    if last - first <= 0:
        return None
    edges = bucket_edges(first, last, buckets)
    cut = [c.id for c in straddling(chunks, edges) if c.id not in decoded]
    _decode_into(decode, cut, decoded)
    series = _thinned(chunks, decoded, recent)
    if series is None:
        return None
    t, v = series
    keep = decimate_numeric(t, v, points, total=total)
    return [t[i] for i in keep], [v[i] for i in keep], len(decoded)


def bucket_edges(first: float, last: float, buckets: int) -> list[float]:
    """The inner edges of `buckets` equal-width buckets over [first, last], computed as
    `decimate_numeric` computes them (a sample on an edge belongs to the later bucket)."""
    return [first + (last - first) * (b + 1) / buckets for b in range(buckets - 1)]


def straddling(chunks: Sequence[ChunkSummary], edges: Sequence[float]) -> list[ChunkSummary]:
    """The chunks whose first and last sample fall into different buckets."""
    return [c for c in chunks if bisect_right(edges, c.t_first) != bisect_right(edges, c.t_last)]


def _cut_or_bare(chunk: ChunkSummary, t0: float, t1: float) -> bool:
    """Whether the chunk must be decoded in any case: the window cuts it, or it has no summary."""
    return chunk.kind is None or chunk.t_first < t0 or chunk.t_last > t1


_SIZE = attrgetter("size")


def _must_decode(chunks: Sequence[ChunkSummary], t0: float, t1: float) -> list[int]:
    """The ids of the chunks `_cut_or_bare` names. Summaries come in time order and do not
    overlap (checked before), so only the first and last can be cut by the window: a day of
    100 tags is 28,800 summaries, and a plot reads them all."""
    ids = [c.id for c in chunks if c.kind is None]
    for c in {chunks[0], chunks[-1]}:
        if c.kind is not None and (c.t_first < t0 or c.t_last > t1):
            ids.append(c.id)
    return ids


def _overlapping(chunks: Sequence[ChunkSummary]) -> bool:
    """Whether a chunk starts at or before the end of the one before it."""
    firsts = list(map(attrgetter("t_first"), chunks))
    lasts = list(map(attrgetter("t_last"), chunks))
    return any(map(operator.ge, lasts[:-1], firsts[1:]))


def _decode_into(decode: Decode, ids: Sequence[int], out: dict[int, list[Sample]]) -> None:
    wanted = [i for i in ids if i not in out]
    if wanted:
        out.update(decode(wanted))


def _numbers(samples: Sequence[Sample]) -> list[float | None]:
    # Only called once the values were checked against NUMERIC_TYPES (int, float, None).
    return cast(list[float | None], [s[1] for s in samples])


def _segments(
    chunks: Sequence[ChunkSummary], decoded: Mapping[int, list[Sample]], recent: Sequence[Sample]
) -> list[tuple[float, float]] | None:
    """The time span of each chunk's part in the window and of the recent rows, in order;
    None when two overlap."""
    segments: list[tuple[float, float]] = []
    for c in chunks:
        part = decoded.get(c.id)
        if part is None:
            segments.append((c.t_first, c.t_last))
        elif part:
            segments.append((part[0][0], part[-1][0]))
    if recent:
        segments.append((recent[0][0], recent[-1][0]))
    if any(a[1] >= b[0] for a, b in itertools.pairwise(segments)):
        return None
    return segments


def _thinned(
    chunks: Sequence[ChunkSummary], decoded: Mapping[int, list[Sample]], recent: Sequence[Sample]
) -> tuple[list[float], list[float | None]] | None:
    """The window's series with each summarized chunk reduced to its first, minimum, maximum
    and last samples; None when the summaries cannot say the order of values."""
    t: list[float] = []
    v: list[float | None] = []
    for c in chunks:
        part = decoded.get(c.id)
        if part is not None:
            t.extend(s[0] for s in part)
            v.extend(_numbers(part))
            continue
        # a summarized chunk: every other one was decoded
        cast_value = int if c.kind == "i" else float
        picks = sorted([(c.t_min, 1, c.v_min), (c.t_max, 2, c.v_max)], key=lambda x: (x[0], x[1]))
        if picks[0][0] == picks[1][0] and picks[0][2] != picks[1][2]:
            return None  # two values at one time: their order is in the blob only
        for time_, _, value in [(c.t_first, 0, c.v_first), *picks, (c.t_last, 3, c.v_last)]:
            if t and t[-1] == time_:
                if v[-1] != value:
                    return None
                continue
            t.append(time_)
            v.append(cast_value(value))
    t.extend(s[0] for s in recent)
    v.extend(_numbers(recent))
    return t, v
