"""Random input either decodes to a valid message or raises ProtocolError, never anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

import protocol as p

from .examples import ALL_MESSAGES

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
TYPE_NAMES = sorted({m.type for m in ALL_MESSAGES})


def _decode_or_protocol_error(frame: bytes | str) -> None:
    try:
        message = p.decode(frame)
    except p.ProtocolError as exc:
        assert str(exc)
    else:
        assert p.decode(p.encode(message)) == message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(frame: bytes) -> None:
    _decode_or_protocol_error(frame)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(frame: str) -> None:
    """Text frames too: a lone surrogate once escaped as UnicodeEncodeError."""
    _decode_or_protocol_error(frame)


@pytest.mark.parametrize(
    "frame", ["\ud800", '{"type": "Ping\udfff"}', "x" * (p.MAX_FRAME_SIZE + 1)]
)
def test_text_that_is_not_utf8_or_too_long_is_a_protocol_error(frame: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(frame)
    assert info.value.rule == 11


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_random_json(value: object) -> None:
    _decode_or_protocol_error(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TYPE_NAMES),
    st.dictionaries(
        st.sampled_from(
            [
                "seq",
                "id",
                "user",
                "time",
                "tags",
                "lines",
                "run_id",
                "ok",
                "command",
                "pcode",
                "uod",
                "state",
                "entries",
            ]
        ),
        JSON,
        max_size=6,
    ),
)
def test_random_objects_with_a_real_type(type_name: str, fields: dict[str, object]) -> None:
    _decode_or_protocol_error(json.dumps({"type": type_name, **fields}).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALL_MESSAGES), st.data())
def test_mutated_valid_messages(message: p.Message, data: st.DataObject) -> None:
    obj = json.loads(p.encode(message))
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = data.draw(JSON)
    _decode_or_protocol_error(json.dumps(obj).encode())


def test_model_progress_with_infinity_is_refused_and_json_safe_drops_it() -> None:
    """JSON has no Infinity: a frame that carries one is refused (it would not survive a
    round trip), and the engine sends a simulated trace's faulted readings as null."""
    frame = b'{"type": "ModelProgress", "model_id": "m1", "status": "working", "data": Infinity}'
    with pytest.raises(p.ProtocolError, match="finite"):
        p.decode(frame)
    data: dict[str, JsonValue] = {
        "trace": {"UV01": {"v": [1.0, float("nan"), float("-inf"), 2]}},
        "n": float("inf"),
    }
    safe = p.json_safe(data)
    assert safe == {"trace": {"UV01": {"v": [1.0, None, None, 2]}}, "n": None}
    message = p.ModelProgress(model_id="m1", status="finished", data=safe)
    assert p.decode(p.encode(message)) == message
