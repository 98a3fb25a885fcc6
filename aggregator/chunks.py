"""Compact encoding of one tag's samples: the reason a 24-hour run fits in a few bytes per value.

Layout of a chunk blob: the byte 0x01 and the payload below as a raw deflate stream (since
issue 15; 5 bytes less per chunk than a zlib stream, whose header and checksum a short chunk of
a reading that changes only now and then paid for), or, as older aggregators wrote it, the
payload as a zlib stream (whose first byte is always 0x78, so the two never mix up). Payload:

    kind byte: b"f" (all float), b"d" (all float with few decimals), b"i" (all int),
               b"j" (anything else, JSON)
    timestamps: first as microseconds, then deltas, zig-zag varints
    values: f -> float64 bits XOR the previous value's bits, byte-transposed (slowly changing
            signals leave long runs of zero bytes that zlib squeezes);
            d -> one byte k, then zig-zag varint deltas of value * 10**k (values rounded to k
            decimals, as instruments report them, and only when that round-trips exactly);
            e -> as d with second-order deltas (delta of delta), written instead of d when it
            comes out shorter: smooth signals, ramps and totalizers cost a fraction of a byte;
            t -> as d with third-order deltas, when shorter still: a smooth reading sampled
            finely (a UV trace through a peak) whose curvature changes slowly;
            i -> zig-zag varint deltas; j -> one JSON array

Timestamps are kept to the microsecond, far finer than any scan interval. Their first-order
deltas repeat (a regular data-log interval), which zlib already squeezes to a few bits each; a
delta-of-delta encoding of them (Gorilla) measured no smaller after zlib, so the layout stays.

Readers decode every kind ever written (f, d, e, i, j since the first chunks; t since issue 15);
a new layout gets a new kind byte, never a changed meaning of an old one.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import zlib
from array import array
from collections.abc import Sequence

from protocol import ScalarValue

Sample = tuple[float, ScalarValue]

_US = 1_000_000


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _put_varints(out: bytearray, numbers: Sequence[int]) -> None:
    append = out.append
    for number in numbers:
        n = _zigzag(number)
        while n >= 0x80:
            append((n & 0x7F) | 0x80)
            n >>= 7
        append(n)


def _get_varints(data: bytes | memoryview, pos: int, count: int) -> tuple[list[int], int]:
    numbers: list[int] = []
    for _ in range(count):
        shift = 0
        n = 0
        while True:
            byte = data[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        numbers.append(_unzigzag(n))
    return numbers, pos


def value_kind(values: Sequence[ScalarValue]) -> bytes:
    if all(type(v) is float for v in values):
        return b"f"
    if all(type(v) is int and -(2**62) < v < 2**62 for v in values):
        return b"i"
    return b"j"


MAX_DECIMALS = 9
"""Totalizers and derived values carry up to 9 decimals; beyond that a float is XOR-coded."""


def _decimal_scale(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """The smallest k <= MAX_DECIMALS such that every value is exactly some integer / 10**k.
    None for -0.0 (round(-1e-9, 6) gives it): it equals 0 / 10**k but is not the same float."""
    if any(v == 0 and math.copysign(1.0, v) < 0 for v in values):
        return None
    for scale in range(MAX_DECIMALS + 1):
        factor = 10**scale
        ints: list[int] = []
        for v in values:
            if not math.isfinite(v) or abs(v) * factor >= 2**53:
                return None
            n = round(v * factor)
            if n / factor != v:
                break
            ints.append(n)
        else:
            return scale, ints
    return None


def encode_chunk(samples: Sequence[Sample]) -> bytes:
    """Encode samples (sorted by time) into one blob."""
    count = len(samples)
    out = bytearray()
    values = [v for _, v in samples]
    kind = value_kind(values)
    out += kind
    out += struct.pack("<I", count)
    stamps = [round(t * _US) for t, _ in samples]
    deltas = [stamps[0]] + [b - a for a, b in itertools.pairwise(stamps)]
    _put_varints(out, deltas)
    if kind == b"f":
        decimals = _decimal_scale(values)  # type: ignore[arg-type]
        if decimals is not None:
            return _decimal_blob(out, *decimals)
        floats = array("d", [float(v) for v in values if isinstance(v, float)])
        bits = array("Q", floats.tobytes())
        xored = array("Q", [bits[0]] + [b ^ a for a, b in itertools.pairwise(bits)])
        raw = xored.tobytes()
        # byte-transpose: all first bytes, then all second bytes, ...
        for lane in range(8):
            out += raw[lane::8]
    elif kind == b"i":
        ints = [int(v) for v in values]  # type: ignore[arg-type]
        _put_varints(out, [ints[0]] + [b - a for a, b in itertools.pairwise(ints)])
    else:
        out += json.dumps(values, separators=(",", ":")).encode()
    return _pack(bytes(out))


def _pack(payload: bytes) -> bytes:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    return RAW + deflate.compress(payload) + deflate.flush()


RAW = b"\x01"
"""First byte of a blob whose payload is a raw deflate stream."""


def payload(blob: bytes) -> bytes:
    """The uncompressed payload of a blob of either container."""
    if blob[:1] == RAW:
        return zlib.decompress(blob[1:], -15)
    return zlib.decompress(blob)


def chunk_kind(blob: bytes) -> bytes:
    """The kind byte of a blob (f, d, e, t, i or j)."""
    return payload(blob)[:1]


def _differences(numbers: Sequence[int]) -> list[int]:
    return [numbers[0], *(b - a for a, b in itertools.pairwise(numbers))]


def _decimal_blob(head: bytearray, scale: int, ints: list[int]) -> bytes:
    """Kind d, e or t, whichever compresses smallest (the header's kind byte is replaced)."""
    first = _differences(ints)
    second = _differences(first)
    blobs = []
    for kind, deltas in ((b"d", first), (b"e", second), (b"t", _differences(second))):
        out = bytearray(kind) + head[1:]
        out.append(scale)
        _put_varints(out, deltas)
        blobs.append(_pack(bytes(out)))
    return min(blobs, key=len)


def _running_sum(numbers: Sequence[int]) -> list[int]:
    return list(itertools.accumulate(numbers))


def decode_chunk(blob: bytes) -> list[Sample]:
    data = payload(blob)
    kind = data[:1]
    (count,) = struct.unpack_from("<I", data, 1)
    deltas, pos = _get_varints(data, 5, count)
    stamps: list[float] = []
    acc = 0
    for delta in deltas:
        acc += delta
        stamps.append(acc / _US)
    values: list[ScalarValue]
    if kind == b"f":
        raw = data[pos : pos + 8 * count]
        interleaved = bytearray(8 * count)
        for lane in range(8):
            interleaved[lane::8] = raw[lane * count : (lane + 1) * count]
        xored = array("Q", bytes(interleaved))
        bits = array("Q", [0] * count)
        prev = 0
        for i, x in enumerate(xored):
            prev ^= x
            bits[i] = prev
        values = list(array("d", bits.tobytes()))
    elif kind in (b"d", b"e", b"t"):
        scale = 10 ** data[pos]
        ints, _ = _get_varints(data, pos + 1, count)
        for _ in range(b"det".index(kind)):
            ints = _running_sum(ints)
        values = [total / scale for total in _running_sum(ints)]
    elif kind == b"i":
        ints, _ = _get_varints(data, pos, count)
        values = []
        total = 0
        for delta in ints:
            total += delta
            values.append(total)
    else:
        values = json.loads(data[pos:])
    return list(zip(stamps, values, strict=True))


SUMMARY_COLUMNS = ("v_kind", "v_min", "t_min", "v_max", "t_max", "v_first", "v_last")
"""Columns of sample_chunk that summarize its values, so a wide plot needs no decoding."""


def chunk_summary(samples: Sequence[Sample]) -> dict[str, str | float | None]:
    """The numeric summary stored beside a chunk: extremes with the time of their first
    occurrence (the sample decimation keeps), and the first and last values.

    Only chunks of all-float or all-int values (ints exact as floats) get one; anything with
    text, booleans, gaps (None) or NaN is left unsummarized (all None) and is decoded when
    plotted, because decimation treats those specially and must give the same answer either way.
    """
    empty: dict[str, str | float | None] = dict.fromkeys(SUMMARY_COLUMNS)
    if not samples:
        return empty
    values = [v for _, v in samples]
    kinds = set(map(type, values))
    if kinds == {float}:
        if any(v != v for v in values):
            return empty
        kind = "f"
    elif kinds == {int} and all(-(2**53) < v < 2**53 for v in values):  # type: ignore[operator]
        kind = "i"
    else:
        return empty
    smallest = min(values)  # type: ignore[type-var]
    largest = max(values)  # type: ignore[type-var]
    return {
        "v_kind": kind,
        "v_min": float(smallest),  # type: ignore[arg-type]
        "t_min": samples[values.index(smallest)][0],
        "v_max": float(largest),  # type: ignore[arg-type]
        "t_max": samples[values.index(largest)][0],
        "v_first": float(values[0]),  # type: ignore[arg-type]
        "v_last": float(values[-1]),  # type: ignore[arg-type]
    }
