"""What an OPC UA connection and its nodes are declared as, and the pure rules the driver applies.

Nothing here imports asyncua: a UOD file imports `OpcUaClient` to declare its connection, and
`setpoint-engine check` or an engine without OPC UA must not pay for loading the OPC UA stack.
The conversions (a tag value into a node's data type, a status code into a quality, an
engineering unit against the UOD's) are plain functions so they are tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.hw.base import Quality, ScalarValue

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
SecurityPolicy = Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]


class OpcUaClient(BaseModel):
    """The connection to one OPC UA server (the endpoint, its security and the login).

    `security="Sign"` or `"SignAndEncrypt"` needs the client's application `certificate` and
    `private_key` (PEM or DER files); the server's certificate is taken from its endpoint unless
    `server_certificate` names a file. Login: anonymous, `user` + `password`, or
    `user_certificate` + `user_private_key` (an X.509 identity)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, description="opc.tcp://host:port/path")
    security: SecurityMode = "None"
    policy: SecurityPolicy = "Basic256Sha256"
    certificate: str | None = Field(default=None, description="client application certificate")
    private_key: str | None = None
    private_key_password: str | None = None
    server_certificate: str | None = None
    user: str | None = None
    password: str | None = None
    user_certificate: str | None = None
    user_private_key: str | None = None
    application_uri: str | None = Field(
        default=None, description="default: the URI in the certificate, else Setpoint's"
    )
    timeout: float = Field(default=2.0, gt=0, description="seconds per request and connect")
    keepalive: float = Field(
        default=1.0, gt=0, description="seconds between checks that the server still answers"
    )
    sampling_interval: float | None = Field(
        default=None, gt=0, description="seconds; default: the UOD's scan interval"
    )

    def __init__(self, url: str | None = None, /, **data: Any) -> None:
        """`OpcUaClient("opc.tcp://...", security=...)`: the URL may be given by position."""
        if url is not None:
            data["url"] = url
        super().__init__(**data)

    @field_validator("url")
    @classmethod
    def _opc_tcp(cls, url: str) -> str:
        if not url.startswith("opc.tcp://") or len(url) <= len("opc.tcp://"):
            raise ValueError(f"url must look like opc.tcp://host:port/path, not {url!r}")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaClient:
        if self.security != "None" and not (self.certificate and self.private_key):
            raise ValueError(
                f"security={self.security!r} needs the client's certificate and private_key"
            )
        if (self.password is not None) and not self.user:
            raise ValueError("password without user")
        if bool(self.user_certificate) != bool(self.user_private_key):
            raise ValueError("user_certificate and user_private_key go together")
        if self.user and self.user_certificate:
            raise ValueError("log in with user/password or with user_certificate, not both")
        return self

    def describe(self) -> str:
        return f"OPC UA {self.url}"

    @property
    def login(self) -> str:
        if self.user:
            return f"user {self.user!r}"
        if self.user_certificate:
            return "a user certificate"
        return "anonymous"


class OpcUaNode(BaseModel):
    """One tag's node; a plain node id string in the UOD's mapping means `OpcUaNode(node=...)`.

    `safe_value` is written at shutdown and on an error pause like the tag's own safe value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str = Field(min_length=1, description='node id, e.g. "ns=2;s=FT01" or "i=2258"')
    safe_value: ScalarValue | None = None


def as_nodes(mapping: Mapping[str, str | OpcUaNode | Mapping[str, Any]]) -> dict[str, OpcUaNode]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError('the OPC UA nodes must be a mapping {tag: "ns=2;s=NODE", ...}')
    nodes: dict[str, OpcUaNode] = {}
    for tag, node in mapping.items():
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"OPC UA tag names must be non-empty strings, not {tag!r}")
        if isinstance(node, str):
            nodes[tag] = OpcUaNode(node=node)
        elif isinstance(node, OpcUaNode):
            nodes[tag] = node
        elif isinstance(node, Mapping):
            nodes[tag] = OpcUaNode(**node)
        else:
            raise ValueError(f"tag {tag!r}: node must be a node id string, not {node!r}")
    return nodes


# ---- values -----------------------------------------------------------------------------------

# Built-in data types by their VariantType number (OPC UA Part 6, 5.1.2), for the ones a tag can
# hold: (name, smallest, largest) for integers, else (name, None, None).
INTEGER_RANGES: Mapping[int, tuple[str, int, int]] = {
    2: ("SByte", -(2**7), 2**7 - 1),
    3: ("Byte", 0, 2**8 - 1),
    4: ("Int16", -(2**15), 2**15 - 1),
    5: ("UInt16", 0, 2**16 - 1),
    6: ("Int32", -(2**31), 2**31 - 1),
    7: ("UInt32", 0, 2**32 - 1),
    8: ("Int64", -(2**63), 2**63 - 1),
    9: ("UInt64", 0, 2**64 - 1),
}
BOOLEAN, FLOAT, DOUBLE, STRING, LOCALIZED_TEXT = 1, 10, 11, 12, 21
TYPE_NAMES: Mapping[int, str] = {
    BOOLEAN: "Boolean",
    FLOAT: "Float",
    DOUBLE: "Double",
    STRING: "String",
    LOCALIZED_TEXT: "LocalizedText",
    **{k: v[0] for k, v in INTEGER_RANGES.items()},
}
WRITABLE_TYPES = frozenset(TYPE_NAMES) - {LOCALIZED_TEXT}


def encode(variant_type: int, value: ScalarValue) -> ScalarValue:
    """`value` as a node of `variant_type` holds it; ValueError when it cannot hold it."""
    name = TYPE_NAMES.get(variant_type)
    if name is None or variant_type not in WRITABLE_TYPES:
        raise ValueError(f"nodes of data type {name or variant_type} cannot be written")
    if variant_type == BOOLEAN:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError(f"a Boolean node takes True/False or 0/1, not {value!r}")
    if variant_type == STRING:
        if isinstance(value, str):
            return value
        raise ValueError(f"a String node takes text, not {value!r}")
    if isinstance(value, str) or value is None:
        raise ValueError(f"a {name} node takes a number, not {value!r}")
    if variant_type in (FLOAT, DOUBLE):
        number = float(value)
        if variant_type == FLOAT and math.isfinite(number) and abs(number) > 3.4028234663852886e38:
            raise ValueError(f"{value!r} is out of range for a Float node")
        return number
    _, low, high = INTEGER_RANGES[variant_type]
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"an {name} node takes whole numbers, not {value!r}")
    whole = int(value)
    if not low <= whole <= high:
        raise ValueError(f"{value!r} is out of range for an {name} node ({low}..{high})")
    return whole


def plain(value: object) -> ScalarValue | None:
    """A node's value as a tag holds it; None for what a tag cannot hold (arrays, structures)."""
    if isinstance(value, bool | int | float | str):
        return value
    text = getattr(value, "Text", None)  # LocalizedText
    if isinstance(text, str) or (text is None and type(value).__name__ == "LocalizedText"):
        return text or ""
    if isinstance(value, datetime):
        return value.isoformat()
    return None


def quality_of(status: int) -> Quality:
    """OPC UA status severity (the top two bits): Good, Uncertain (usable, but doubtful: shown as
    stale), Bad."""
    severity = (status >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.STALE
    return Quality.BAD


# ---- engineering units -------------------------------------------------------------------------


def unit_problem(
    tag: str,
    declared: str | None,
    served: str | None,
    same: Callable[[str, str], bool] | None = None,
) -> str | None:
    """Why the server's EngineeringUnits disagree with the UOD's unit, if they do. A server that
    gives no unit cannot be checked and passes."""
    if served is None or not served.strip():
        return None
    served = served.strip()
    if declared is None:
        return f"tag {tag!r}: the server's unit is {served!r}, the UOD declares none"
    if declared.strip() == served or (same is not None and same(declared.strip(), served)):
        return None
    return f"tag {tag!r}: the server's unit is {served!r}, the UOD declares {declared!r}"


def same_unit_by_pint() -> Callable[[str, str], bool]:
    """Spellings of one unit ("l/h" and "L/h", "°C" and "degC") are the same unit."""
    from engine.lang.units import factor, new_unit_registry

    ureg = new_unit_registry()

    def same(a: str, b: str) -> bool:
        try:
            ratio = factor(ureg, _pint(a), _pint(b))
        except Exception:
            return False
        return math.isclose(float(ratio), 1.0, rel_tol=1e-12)

    return same


def _pint(unit: str) -> str:
    return "percent" if unit == "%" else unit
