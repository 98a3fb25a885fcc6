from __future__ import annotations

import json

import pytest

import protocol as p

from .examples import ALL_MESSAGES

REGISTER = next(m for m in ALL_MESSAGES if isinstance(m, p.RegisterEngine))


def _register_frame(version: str, **extra: object) -> bytes:
    data = json.loads(p.encode(REGISTER))
    data["protocol_version"] = version
    data.update(extra)
    data["uod"]["future_field"] = [1, 2, 3]
    return json.dumps(data).encode()


def test_newer_minor_with_extra_fields_decodes() -> None:
    message = p.decode(_register_frame("1.9", shiny_new_field="x"))
    assert isinstance(message, p.RegisterEngine)
    assert message.protocol_version == "1.9"
    assert message.uod == REGISTER.uod


def test_other_major_is_refused_naming_both_versions() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(_register_frame("2.0"))
    assert info.value.rule == 12
    assert "2.0" in str(info.value)
    assert p.PROTOCOL_VERSION in str(info.value)


def test_registered_from_other_major_is_refused() -> None:
    frame = p.encode(
        p.Registered(
            engine_id="e", session_id="s", last_seq=0, clock_offset=0, protocol_version="3.1"
        )
    )
    with pytest.raises(p.ProtocolError, match=r"3\.1"):
        p.decode(frame)


def test_malformed_version_is_a_field_error() -> None:
    with pytest.raises(p.ProtocolError, match="protocol_version"):
        p.decode(_register_frame("one"))


def test_check_compatible() -> None:
    p.check_compatible("1.0", "1.5")
    with pytest.raises(p.ProtocolError, match=r"0\.9"):
        p.check_compatible("0.9", "1.0")
