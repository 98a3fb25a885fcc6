"""Issue 15 item 6: chunks of smooth signals and totalizers are coded with second-order deltas
and up to 9 decimals; chunks written by earlier aggregators (kinds d and f) still decode."""

from __future__ import annotations

import math

from aggregator.chunks import chunk_kind, decode_chunk, encode_chunk

T0 = 1_700_000_000.0

# Written by the encoder before this change: 6 decimals as kind d, 9 decimals as kind f.
OLD_DECIMAL = "789c4b616360606868f8d4d8dcd9cad6d059858c98778833b171f1090100ff7a0d08"
OLD_FLOAT = (
    "789c4b636360606868f8d4d8dcd9cad6d059858c18be33f0f1f1321c6710129acdb099a1b43499a19e21216102"
    "8326c3b76f13187e32383b3f62986320c959c7600f348501002533192c"
)


def test_chunks_of_earlier_aggregators_still_decode() -> None:
    old_decimal = bytes.fromhex(OLD_DECIMAL)
    assert chunk_kind(old_decimal) == b"d"
    assert decode_chunk(old_decimal) == [(T0 + i, round(1.5 + 0.001 * i * i, 6)) for i in range(6)]
    old_float = bytes.fromhex(OLD_FLOAT)
    assert chunk_kind(old_float) == b"f"
    assert decode_chunk(old_float) == [(T0 + i, round(0.028294228 * i, 9)) for i in range(6)]


def test_a_totalizer_costs_a_fraction_of_a_byte_per_value() -> None:
    samples = [(T0 + i, round(0.014575539 * i + 1e-6 * (i % 7), 9)) for i in range(300)]
    blob = encode_chunk(samples)
    assert chunk_kind(blob) == b"e"
    assert decode_chunk(blob) == samples
    assert len(blob) / len(samples) < 1.0


def test_noisy_readings_keep_first_order_deltas_when_they_are_shorter() -> None:
    samples = [(T0 + i, round(5 + math.sin(i * 1.7) * 3, 6)) for i in range(300)]
    blob = encode_chunk(samples)
    assert chunk_kind(blob) == b"d"
    assert decode_chunk(blob) == samples


def test_a_smooth_reading_is_coded_as_delta_of_delta_or_higher() -> None:
    samples = [(T0 + i, round(1.66 - 0.5 * math.exp(-i / 40), 6)) for i in range(300)]
    blob = encode_chunk(samples)
    assert chunk_kind(blob) in (b"e", b"t")  # t: third differences, when shorter
    assert decode_chunk(blob) == samples


def test_more_than_nine_decimals_stay_bit_exact_floats() -> None:
    samples = [(T0 + i, 0.1234567891234 * i) for i in range(50)]
    blob = encode_chunk(samples)
    assert chunk_kind(blob) == b"f"
    assert decode_chunk(blob) == samples
