"""The one codec both sides use: bytes on the wire <-> message objects.

decode() never raises anything but ProtocolError, so a bad frame can always be answered with a
ProtocolError message (rule 11) instead of tearing the connection down.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from protocol.errors import ProtocolError
from protocol.messages import Message
from protocol.validation import first_problem
from protocol.version import PROTOCOL_VERSION, check_compatible

MAX_FRAME_SIZE = 1024 * 1024
"""Default size limit of one frame, in bytes (1 MiB)."""


@functools.cache
def _message_adapter() -> TypeAdapter[Message]:
    """Built on first use: building the union's validator is a large part of an engine's start-up,
    and the engine sends its first frame (RegisterEngine) before it has anything to decode."""
    return TypeAdapter(Message)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(data: bytes | str, *, max_size: int = MAX_FRAME_SIZE) -> Message:
    """Parse one frame; raise ProtocolError naming the field or rule at fault."""
    if isinstance(data, str):
        if len(data) > max_size:  # every character is at least one byte: no need to encode
            raise ProtocolError(
                f"frame of at least {len(data)} bytes exceeds the limit of {max_size} bytes",
                rule=11,
            )
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:
            raise ProtocolError(f"frame is not valid UTF-8 text: {exc.reason}", rule=11) from None
    size = len(data)
    if size > max_size:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {max_size} bytes", rule=11)
    try:
        message = _message_adapter().validate_json(data)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc, data), rule=11) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}", rule=11) from None
    remote = getattr(message, "protocol_version", None)
    if isinstance(remote, str):
        check_compatible(remote, PROTOCOL_VERSION)
    return message


def _describe(exc: ValidationError, data: bytes | str) -> str:
    """Turn pydantic's error list into one line a person can act on."""
    problem = first_problem(exc)
    if problem.kind == "json_invalid":
        return f"frame is not valid JSON: {problem.message}"
    if problem.kind == "union_tag_not_found":
        return "missing field 'type'"
    if problem.kind == "union_tag_invalid":
        return f"unknown message type {_type_of(data)!r}"
    if problem.field is None:
        return "frame must be a JSON object"
    return problem.line()


def _type_of(data: bytes | str) -> Any:
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed.get("type") if isinstance(parsed, dict) else None
