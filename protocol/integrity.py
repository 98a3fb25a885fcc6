"""Comparing a resent message with the stored copy (rule 6) and marking replays (rule 8)."""

from __future__ import annotations

import hashlib
import json

from protocol.messages import TagsUpdated
from protocol.models import WireModel


def content_digest(message: WireModel) -> str:
    """Hash of what a message says, ignoring the transport-only `historical` flags.

    A replayed TagsUpdated is marked historical by the sender; it still says the same thing as the
    copy stored before the outage, so the two must compare equal.
    """
    data = message.model_dump(mode="json")
    if isinstance(message, TagsUpdated):
        for tag in data["tags"]:
            tag.pop("historical", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_historical(message: TagsUpdated) -> TagsUpdated:
    tags = [tag.model_copy(update={"historical": True}) for tag in message.tags]
    return message.model_copy(update={"tags": tags})
