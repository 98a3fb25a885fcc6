"""Hardware layer: the driver contract, Modbus and serial drivers, recovery and composition."""

from engine.hw.base import (
    Clock,
    ConnectionChanged,
    ConnectionState,
    Hardware,
    HardwareEvent,
    Quality,
    Reading,
    ScalarValue,
    WriteRejected,
)
from engine.hw.composite import CompositeHardware
from engine.hw.recovery import RecoveryMachine, RecoveryPolicy

__all__ = [
    "Clock",
    "CompositeHardware",
    "ConnectionChanged",
    "ConnectionState",
    "Hardware",
    "HardwareEvent",
    "Quality",
    "Reading",
    "RecoveryMachine",
    "RecoveryPolicy",
    "ScalarValue",
    "WriteRejected",
]
