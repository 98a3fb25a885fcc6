"""The Modbus register map of the simulated chromatography skid (`setpoint-sim modbus`).

The Modbus UOD in uod_examples imports these declarations, so the map is defined once for the
device and for the driver. Device id 1; floats are IEEE 754 float32, big-endian words and bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.hw.modbus_codec import ModbusRegister
from engine.hw.watchdog import Heartbeat

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
WATCHDOG_TRIPPED = ModbusRegister(
    tag="Watchdog Tripped", table="discrete_input", address=1, data_type="bool"
)

# The communication-loss watchdog. These two belong to the driver's heartbeat, not to tags.
WATCHDOG_COUNTER = ModbusRegister(
    tag="Watchdog Counter", table="holding", address=3, data_type="uint16"
)
WATCHDOG_TIMEOUT = ModbusRegister(
    tag="Watchdog Timeout", table="holding", address=4, data_type="uint16"
)
# A trip is latched: the device holds its safe state (and refuses other setpoints) until 1 is
# written to this coil, as a real skid needs a reset at its panel after a communication loss.
WATCHDOG_RESET = ModbusRegister(tag="Watchdog Reset", table="coil", address=0, data_type="bool")
WATCHDOG_REGISTERS: tuple[ModbusRegister, ...] = (
    WATCHDOG_COUNTER,
    WATCHDOG_TIMEOUT,
    WATCHDOG_RESET,
)
WATCHDOG_TIMEOUT_UNIT = 0.001  # the timeout register counts milliseconds; 0 = watchdog off


def heartbeat(timeout: float = 3.0, period: float = 0.5) -> Heartbeat:
    """The engine side of this device's watchdog: the counter every `period`, and `timeout`
    written to the device on every connect."""
    return Heartbeat(
        address=WATCHDOG_COUNTER.address,
        device_id=DEVICE_ID,
        period=period,
        timeout=timeout,
        timeout_address=WATCHDOG_TIMEOUT.address,
        timeout_unit=WATCHDOG_TIMEOUT_UNIT,
    )


SETPOINTS: tuple[ModbusRegister, ...] = (PU01, INLET)
MEASUREMENTS: tuple[ModbusRegister, ...] = (FT01, PT01, UV01, CT01)
CHROMATOGRAPHY_REGISTERS: tuple[ModbusRegister, ...] = (
    *SETPOINTS,
    *MEASUREMENTS,
    HEARTBEAT,
    MODEL_NAME,
    PUMP_RUNNING,
    WATCHDOG_TRIPPED,
)
DEVICE_REGISTERS: tuple[ModbusRegister, ...] = (*CHROMATOGRAPHY_REGISTERS, *WATCHDOG_REGISTERS)
UNITS: Mapping[str, str] = MappingProxyType(
    {"PU01": "%", "FT01": "L/h", "PT01": "bar", "UV01": "mAU", "CT01": "mS/cm"}
)
