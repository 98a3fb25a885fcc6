"""Chunk encoding round-trips every kind of value exactly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from aggregator.chunks import decode_chunk, encode_chunk

times = st.floats(min_value=1e9, max_value=2e9, allow_nan=False).map(lambda t: round(t * 1e6) / 1e6)
scalars = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**61), max_value=2**61),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
)


@given(st.lists(st.tuples(times, scalars), min_size=1, max_size=50))
def test_mixed_values_round_trip(samples: list[tuple[float, object]]) -> None:
    samples.sort(key=lambda s: s[0])
    assert decode_chunk(encode_chunk(samples)) == samples  # type: ignore[arg-type]


@given(st.lists(st.tuples(times, st.floats(allow_nan=False)), min_size=1, max_size=50))
def test_floats_round_trip_bit_exact(samples: list[tuple[float, float]]) -> None:
    samples.sort(key=lambda s: s[0])
    decoded = decode_chunk(encode_chunk(samples))
    assert [math.copysign(1, v) * abs(v) for _, v in decoded] == [v for _, v in samples]  # type: ignore[arg-type]
    assert [type(v) for _, v in decoded] == [float] * len(samples)


def test_decimal_values_are_small() -> None:
    samples = [(1.7e9 + i, round(20 + 0.01 * (i % 37), 2)) for i in range(300)]
    blob = encode_chunk(samples)
    assert decode_chunk(blob) == samples
    assert len(blob) < 300


def test_ints_and_text_keep_their_type() -> None:
    ints = [(1.7e9 + i, i * 7) for i in range(10)]
    assert decode_chunk(encode_chunk(ints)) == ints
    text = [(1.7e9 + i, "VA01" if i % 2 else "VA02") for i in range(10)]
    assert decode_chunk(encode_chunk(text)) == text
