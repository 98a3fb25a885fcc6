"""Hardware layer: the driver contract, Modbus and serial drivers, recovery and composition.

README.md describes the drivers. Who may import it: UOD files, the rest of engine (scan, uod,
sim, simdev, CLI, shutdown) and tests. It imports only engine.lang (units), never the engine's scan,
protocol or the aggregator.
"""

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
