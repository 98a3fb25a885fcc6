from __future__ import annotations

import json
import typing

import pytest

import protocol as p
from protocol.codec import MAX_FRAME_SIZE

from .examples import ALL_MESSAGES


def _all_type_names() -> set[str]:
    members = typing.get_args(typing.get_args(p.Message)[0])
    return {member.model_fields["type"].default for member in members}


def test_examples_cover_every_message_type() -> None:
    assert {m.type for m in ALL_MESSAGES} == _all_type_names()
    assert len(_all_type_names()) == 29


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: m.type)
def test_round_trip(message: p.Message) -> None:
    frame = p.encode(message)
    assert isinstance(frame, bytes)
    decoded = p.decode(frame)
    assert type(decoded) is type(message)
    assert decoded == message
    assert p.decode(frame.decode()) == message


def test_stored_messages_carry_seq_and_requests_carry_user_and_id() -> None:
    for message in ALL_MESSAGES:
        if isinstance(message, p.STORED_MESSAGE_TYPES):
            assert message.seq >= 1
        if isinstance(
            message,
            p.InvokeCommand
            | p.ControlCommand
            | p.SetMethod
            | p.CancelLine
            | p.ForceLine
            | p.AlarmCommand,
        ):
            assert message.user and message.id


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "missing field 'type'"),
        (b'{"type": "Launch"}', "unknown message type 'Launch'"),
        (b'{"type": "Ack"}', "Ack.seq"),
        (b'{"type": "Ack", "seq": -1}', "Ack.seq"),
        (b'{"type": "Ack", "seq": 9223372036854775808}', "Ack.seq"),
        (b'{"type": "TagsUpdated", "seq": 1, "time": 0, "tags": []}', "TagsUpdated.tags"),
        (
            b'{"type": "TagsUpdated", "seq": 1, "time": 0, "tags": [{"name": "a", "value": 1, "tick": 0, "quality": "meh"}]}',
            "TagsUpdated.tags.0.quality",
        ),
        (
            b'{"type": "ControlCommand", "id": "x", "user": "ann", "command": "Explode"}',
            "ControlCommand.command",
        ),
        (b'{"type": "InvokeCommand", "id": "x", "pcode": "Mark: a"}', "InvokeCommand.user"),
        (b'{"type": "CommandResult", "ok": true}', "CommandResult.id"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_frames_name_the_fault(frame: bytes, expected: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(frame)
    assert expected in str(info.value)
    assert info.value.rule == 11


def test_frame_over_size_limit_is_refused_before_parsing() -> None:
    big = b"{" + b" " * MAX_FRAME_SIZE + b"}"
    with pytest.raises(p.ProtocolError) as info:
        p.decode(big)
    assert "exceeds the limit of 1048576 bytes" in str(info.value)
    # an invalid frame over the limit is refused for its size, proving parsing never started
    with pytest.raises(p.ProtocolError, match="exceeds the limit of 10 bytes"):
        p.decode(b"not json at all", max_size=10)


def test_size_limit_is_configurable() -> None:
    frame = p.encode(p.Ack(seq=1))
    assert p.decode(frame, max_size=len(frame)) == p.Ack(seq=1)
    with pytest.raises(p.ProtocolError):
        p.decode(frame, max_size=len(frame) - 1)


def test_unknown_fields_are_ignored() -> None:
    frame = json.dumps({"type": "Ack", "seq": 4, "added_in_1_7": {"x": 1}}).encode()
    assert p.decode(frame) == p.Ack(seq=4)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type": "TagsUpdated", "seq": 1, "time": NaN, "tags": [{"name": "a", "value": 1, "tick": 0}]}',
        b'{"type": "TagsUpdated", "seq": 1, "time": 0, "tags": [{"name": "a", "value": 1, "tick": Infinity}]}',
        b'{"type": "ControlState", "seq": 1, "time": 0, "state": "Running", "run_time": Infinity}',
        b'{"type": "Heartbeat", "seq": 1, "time": -Infinity}',
    ],
)
def test_times_must_be_finite(frame: bytes) -> None:
    """A NaN or infinite time would poison storage and ordering: refused at the edge (rule 11)."""
    with pytest.raises(p.ProtocolError, match="finite"):
        p.decode(frame)
