"""Issue 15 item 6: the decimal codec (kinds d, e, t: first, second or third differences of
value * 10**k, whichever is shortest) is lossless, bit for bit, for any float series; NaN,
infinities and -0.0 fall back to XOR floats; blobs of every earlier kind still decode."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from aggregator.chunks import Sample, chunk_kind, decode_chunk, encode_chunk

T0 = 1_800_000_000.0


def _bits(values: Sequence[object]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def _same(decoded: Sequence[Sample], samples: Sequence[tuple[float, float]]) -> bool:
    """Exact equality, including NaN payloads and the sign of zero."""
    return [t for t, _ in decoded] == [t for t, _ in samples] and _bits(
        [v for _, v in decoded]
    ) == _bits([v for _, v in samples])


@given(
    st.integers(min_value=0, max_value=6),
    st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=300),
)
def test_decimal_series_round_trip_exactly(decimals: int, ints: list[int]) -> None:
    samples = [(T0 + i, round(n / 10**decimals, decimals)) for i, n in enumerate(ints)]
    assert _same(decode_chunk(encode_chunk(samples)), samples)


@given(
    st.lists(
        st.one_of(
            st.floats(),
            st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e308]),
        ),
        min_size=1,
        max_size=100,
    )
)
def test_any_float_series_round_trips_bit_exact(values: list[float]) -> None:
    samples = [(T0 + 0.1 * i, v) for i, v in enumerate(values)]
    samples = [(round(t * 1e6) / 1e6, v) for t, v in samples]
    assert _same(decode_chunk(encode_chunk(samples)), samples)


def test_a_smooth_peak_is_coded_with_third_differences_under_2_bytes_a_value() -> None:
    # a UV trace through a peak at the detector's 0.001 mAU, one value a second
    samples = [(T0 + i, round(800 * math.exp(-(((i - 150) / 40) ** 2)), 3)) for i in range(300)]
    blob = encode_chunk(samples)
    assert chunk_kind(blob) == b"t"
    assert _same(decode_chunk(blob), samples)
    assert len(blob) / len(samples) < 2.0


def test_negative_zero_is_not_turned_into_zero() -> None:
    samples = [(T0, 0.0), (T0 + 1, -0.0), (T0 + 2, 0.5)]
    decoded = decode_chunk(encode_chunk(samples))
    assert math.copysign(1, decoded[1][1]) == -1  # type: ignore[arg-type]


OLD_E = (
    "789c4be5606060686838d2f9f4e826b686ce2a4cc4d670b697b1b7a787f121cb4596c32c9b5956b2cc640100a3"
    "1917bb"
)
"""Kind e, written by the encoder before kind t existed (HEAD 0e3045c)."""


def test_chunks_written_before_kind_t_still_decode() -> None:
    blob = bytes.fromhex(OLD_E)
    assert chunk_kind(blob) == b"e"
    expected = [(T0 + i, round(1.66 - 0.5 * math.exp(-i / 40), 6)) for i in range(8)]
    assert _same(decode_chunk(blob), expected)


def test_new_chunks_are_raw_deflate_and_old_zlib_chunks_still_decode() -> None:
    samples = [(T0 + i, round(0.25 * i, 2)) for i in range(10)]
    blob = encode_chunk(samples)
    assert blob[:1] == b"\x01"
    assert decode_chunk(blob) == samples
    payload = zlib.decompress(blob[1:], -15)
    assert decode_chunk(zlib.compress(payload)) == samples  # as older aggregators stored it
