"""JSON Schema of every message, generated from the models (never written by hand)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from protocol.messages import Message
from protocol.version import PROTOCOL_VERSION


def message_schema() -> dict[str, Any]:
    schema = TypeAdapter(Message).json_schema(mode="validation")
    schema["title"] = "Setpoint engine-aggregator protocol"
    schema["description"] = (
        f"Protocol version {PROTOCOL_VERSION}. One JSON object per websocket frame; "
        "`type` selects the message."
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_text() -> str:
    return json.dumps(message_schema(), indent=2, sort_keys=True) + "\n"
