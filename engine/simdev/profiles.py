"""Serial exchange declarations for the two shipped instrument profiles.

UOD files import these (e.g. `SerialHardware(SerialPort(url=...), BALANCE_EXCHANGES)`); the
simulators in `instruments.py` answer exactly these requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.hw.serial_line import SerialExchange, SerialPort

NUMBER = r"-?\d+(?:\.\d+)?"

BALANCE_EXCHANGES: tuple[SerialExchange, ...] = (
    SerialExchange(
        tag="Balance Weight",
        request=b"S\r\n",
        pattern=rf"^S S\s+(?P<value>{NUMBER})\s+(?P<unit>\S+)$",
        poll_interval=0.2,
    ),
    SerialExchange(
        tag="Balance Tare",
        kind="write",
        write_template="T\r\n",
        pattern=rf"^T S\s+{NUMBER}\s+\S+$",
        always_send=True,
    ),
    SerialExchange(
        tag="Balance Zero",
        kind="write",
        write_template="Z\r\n",
        pattern=r"^Z A$",
        always_send=True,
    ),
)

PUMP_EXCHANGES: tuple[SerialExchange, ...] = (
    SerialExchange(
        tag="Pump State",
        request=b"STATUS?\r\n",
        pattern=r"^STATUS (?P<value>RUN|STOP) ",
        value_type="str",
        poll_interval=0.2,
    ),
    SerialExchange(
        tag="Pump Speed PV",
        request=b"SPEED?\r\n",
        pattern=rf"^SPEED (?P<value>{NUMBER}) (?P<unit>rpm)$",
        poll_interval=0.2,
    ),
    SerialExchange(
        tag="Pump Flow",
        request=b"FLOW?\r\n",
        pattern=rf"^FLOW (?P<value>{NUMBER}) (?P<unit>mL/min)$",
        poll_interval=0.2,
    ),
    SerialExchange(
        tag="Pump Direction PV",
        request=b"STATUS?\r\n",
        pattern=r"^STATUS \w+ \S+ (?P<value>CW|CCW)$",
        value_type="str",
        poll_interval=0.5,
    ),
    SerialExchange(
        tag="Pump Command",
        kind="write",
        write_choices={"Run": "RUN\r\n", "Stop": "STOP\r\n"},
        pattern=r"^OK$",
        safe_value="Stop",
        confirm_with="Pump State",
    ),
    SerialExchange(
        tag="Pump Speed",
        kind="write",
        write_template="SPEED {value:.1f}\r\n",
        pattern=r"^OK$",
        safe_value=0.0,
        confirm_with="Pump Speed PV",
    ),
    SerialExchange(
        tag="Pump Direction",
        kind="write",
        write_choices={"CW": "DIR CW\r\n", "CCW": "DIR CCW\r\n"},
        pattern=r"^OK$",
        confirm_with="Pump Direction PV",
    ),
)

PROFILES: Mapping[str, tuple[SerialExchange, ...]] = MappingProxyType(
    {"balance": BALANCE_EXCHANGES, "pump": PUMP_EXCHANGES}
)


def balance_port(url: str) -> SerialPort:
    return SerialPort(url=url, baudrate=9600, timeout=0.5)


def pump_port(url: str) -> SerialPort:
    return SerialPort(url=url, baudrate=9600, timeout=0.5)
