"""Protocol version policy (rule 12): same major is compatible, a different major is refused."""

from __future__ import annotations

from protocol.errors import ProtocolError

PROTOCOL_VERSION = "1.5"


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor)
    except ValueError:
        raise ProtocolError(
            f"protocol version {text!r} is not of the form major.minor", rule=12
        ) from None


def check_compatible(remote: str, local: str = PROTOCOL_VERSION) -> None:
    if parse_version(remote)[0] != parse_version(local)[0]:
        raise ProtocolError(
            f"protocol version {remote} is not compatible with version {local} "
            "(major versions differ); upgrade the older side",
            rule=12,
        )


LIVE_DEMAND_VERSION = (1, 4)
"""The first version whose engines understand `LiveDemand`; older ones are never sent it."""

LIVE_TAGS_VERSION = (1, 5)
"""The first version whose aggregators take `LiveTags`; older ones get `TagsUpdated` frames
with `sample: false` instead."""


def at_least(remote: str, version: tuple[int, int]) -> bool:
    """True when the peer's `major.minor` is `version` or later (same major assumed checked)."""
    try:
        return parse_version(remote) >= version
    except ProtocolError:
        return False
