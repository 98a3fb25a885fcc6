"""From Setpoint's live values to OPC UA data values, without any server state.

A variable's data type is fixed when its node is made (asyncua refuses a write whose variant
type differs from the previous value's), so every value is converted to the node's type:
numbers are Double (an engine may send 1 then 1.5 for the same tag), choices and texts String,
flags Boolean. A value that does not convert, and a missing value, are sent with a Bad status
and no value, which OPC UA clients understand without reading our docs.
"""

from __future__ import annotations

import datetime
from typing import Any

from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaprotocol_auto import EUInformation
from asyncua.ua.uatypes import (
    DataValue,
    DateTime,
    Int16,
    Int32,
    LocalizedText,
    NodeId,
    StatusCode,
    String,
    UInt32,
    Variant,
    VariantType,
)

from protocol import ScalarValue, TagDescription

UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"

UNECE_CODES: dict[str, str] = {
    "°C": "CEL",
    "degC": "CEL",
    "K": "KEL",
    "bar": "BAR",
    "mbar": "MBR",
    "Pa": "PAL",
    "kPa": "KPA",
    "L": "LTR",
    "mL": "MLT",
    "L/min": "L2",
    "L/h": "E32",
    "%": "P1",
    "s": "SEC",
    "min": "MIN",
    "h": "HUR",
    "kg": "KGM",
    "g": "GRM",
    "kg/h": "E93",
    "m": "MTR",
    "mm": "MMT",
    "V": "VLT",
    "A": "AMP",
    "W": "WTT",
    "Hz": "HTZ",
    "rpm": "RPM",
}
"""Units with a UN/CEFACT common code; others are sent with UnitId -1 and their text."""

STATUS_OF_QUALITY: dict[str, int] = {
    "good": StatusCodes.Good,
    "stale": StatusCodes.UncertainLastUsableValue,
    "bad": StatusCodes.Bad,
}


def engineering_units(unit: str | None) -> EUInformation:
    text = unit or ""
    code = UNECE_CODES.get(text)
    unit_id = -1
    if code is not None:
        unit_id = 0
        for char in code:
            unit_id = (unit_id << 8) | ord(char)
    return EUInformation(
        NamespaceUri=UNECE_URI,
        UnitId=unit_id,
        DisplayName=LocalizedText(text),
        Description=LocalizedText(text),
    )


def variant_type_for(value: ScalarValue, description: TagDescription | None) -> VariantType:
    """The type a tag's node gets: from its value if one is known, else from the UOD."""
    sample = value
    if sample is None and description is not None:
        sample = description.safe_value
    if isinstance(sample, bool):
        return VariantType.Boolean
    if isinstance(sample, int | float):
        return VariantType.Double
    if isinstance(sample, str):
        return VariantType.String
    if description is not None and description.kind == "choice":
        return VariantType.String
    return VariantType.Double


def convert(value: ScalarValue, vtype: VariantType) -> Any:
    """The value as `vtype`; raises ValueError when it has no such form."""
    if vtype == VariantType.String:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if vtype == VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(value)


def status(code: int) -> StatusCode:
    return StatusCode(UInt32(code))


def node_id(identifier: str, namespace: int) -> NodeId:
    return NodeId(String(identifier), Int16(namespace))


def standard_node(object_id: int) -> NodeId:
    """A node of namespace 0, e.g. a data type from ObjectIds."""
    return NodeId(Int32(object_id))


def utc_now() -> DateTime:
    return DateTime.now(datetime.UTC)


def timestamp(tick: float) -> DateTime:
    return DateTime.fromtimestamp(tick, datetime.UTC)


def tag_value(tag: dict[str, Any], vtype: VariantType, now: DateTime) -> DataValue:
    """A live tag (LiveTag.as_json) as the data value of a node of type `vtype`."""
    code = STATUS_OF_QUALITY.get(str(tag.get("quality")), StatusCodes.Bad)
    tick = tag.get("tick")
    source = timestamp(tick) if isinstance(tick, int | float) else now
    value = tag.get("value")
    if value is None:
        return _empty(StatusCodes.BadWaitingForInitialData, source, now)
    try:
        converted = convert(value, vtype)
    except (ValueError, OverflowError):
        return _empty(StatusCodes.BadTypeMismatch, source, now)
    return DataValue(
        Value=Variant(converted, vtype),
        StatusCode=status(code),
        SourceTimestamp=source,
        ServerTimestamp=now,
    )


def plain_value(value: Any, vtype: VariantType, now: DateTime) -> DataValue:
    return DataValue(Value=Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now)


def _empty(code: int, source: DateTime, now: DateTime) -> DataValue:
    return DataValue(
        Value=Variant(None, VariantType.Null),
        StatusCode=status(code),
        SourceTimestamp=source,
        ServerTimestamp=now,
    )
