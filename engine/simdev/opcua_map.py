"""The node map of the simulated chromatography skid served over OPC UA (`setpoint-sim opcua`).

The OPC UA UOD in uod_examples imports it, so the map is defined once for the server and for the
driver. Kept free of asyncua: loading a UOD must not load the OPC UA stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

DEFAULT_PORT = 4841
NAMESPACE = "urn:setpoint:sim:chromatography"  # the first namespace the server registers: ns=2
PATH = "/setpoint-sim/chromatography"
NodeType = Literal["Double", "String", "UInt32", "Boolean"]


def url(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
    return f"opc.tcp://{host}:{port}{PATH}"


# tag -> (data type, writable, EngineeringUnits, value at start)
NODES: Mapping[str, tuple[NodeType, bool, str | None, float | str | bool | int]] = MappingProxyType(
    {
        "PU01": ("Double", True, "%", 0.0),
        "Inlet": ("String", True, None, "None"),
        "FT01": ("Double", False, "L/h", 0.0),
        "PT01": ("Double", False, "bar", 0.0),
        "UV01": ("Double", False, "mAU", 0.0),
        "CT01": ("Double", False, "mS/cm", 0.0),
        "Heartbeat": ("UInt32", False, None, 0),
        "Device Model": ("String", False, None, "SP-CHROM"),
        "Pump Running": ("Boolean", False, None, False),
    }
)
NODE_IDS: Mapping[str, str] = MappingProxyType({tag: f"ns=2;s={tag}" for tag in NODES})
SAFE_VALUES: Mapping[str, float | str] = MappingProxyType({"PU01": 0.0, "Inlet": "None"})
