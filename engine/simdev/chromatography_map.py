"""The Modbus register map of the simulated chromatography skid (`setpoint-sim modbus`).

The Modbus UOD in uod_examples imports these declarations, so the map is defined once for the
device and for the driver. Device id 1; floats are IEEE 754 float32, big-endian words and bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.hw.modbus_codec import ModbusRegister

DEVICE_ID = 1
DEFAULT_PORT = 5020

INLET_CODES: Mapping[str, int] = MappingProxyType({"None": 0, "VA01": 1, "VA02": 2, "VA03": 3})
INLET_NAMES: Mapping[int, str] = MappingProxyType({v: k for k, v in INLET_CODES.items()})

PU01 = ModbusRegister(tag="PU01", table="holding", address=0, data_type="float32", safe_value=0.0)
INLET = ModbusRegister(tag="Inlet", table="holding", address=2, data_type="uint16", safe_value=0)
FT01 = ModbusRegister(tag="FT01", table="input", address=0, data_type="float32")
PT01 = ModbusRegister(tag="PT01", table="input", address=2, data_type="float32")
UV01 = ModbusRegister(tag="UV01", table="input", address=4, data_type="float32")
CT01 = ModbusRegister(tag="CT01", table="input", address=6, data_type="float32")
HEARTBEAT = ModbusRegister(tag="Heartbeat", table="input", address=8, data_type="uint16")
MODEL_NAME = ModbusRegister(
    tag="Device Model", table="input", address=16, data_type="string", length=8
)
PUMP_RUNNING = ModbusRegister(
    tag="Pump Running", table="discrete_input", address=0, data_type="bool"
)

SETPOINTS: tuple[ModbusRegister, ...] = (PU01, INLET)
MEASUREMENTS: tuple[ModbusRegister, ...] = (FT01, PT01, UV01, CT01)
CHROMATOGRAPHY_REGISTERS: tuple[ModbusRegister, ...] = (
    *SETPOINTS,
    *MEASUREMENTS,
    HEARTBEAT,
    MODEL_NAME,
    PUMP_RUNNING,
)
UNITS: Mapping[str, str] = MappingProxyType(
    {"PU01": "%", "FT01": "L/h", "PT01": "bar", "UV01": "mAU", "CT01": "mS/cm"}
)
