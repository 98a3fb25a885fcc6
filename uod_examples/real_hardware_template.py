"""A bioreactor on real hardware: a PLC over Modbus TCP and a stirrer on a serial line.

Copy this file and change the addresses, registers and tags to your unit. Under
`simulate` the same file runs its process model (uod.simulation) instead of the plant, so a
method can be tried at full speed before it meets the hardware:

    setpoint-engine check --uod real_hardware_template.py
    setpoint-engine simulate --uod real_hardware_template.py \
        --method real_hardware_template.pcode --speed max
    setpoint-engine run --uod real_hardware_template.py --method real_hardware_template.pcode

The PLC's address comes from SETPOINT_PLC_HOST and SETPOINT_PLC_PORT, the stirrer's serial port
from SETPOINT_STIRRER_PORT (defaults below; on Windows a port is named like COM3).
"""

from __future__ import annotations

import math
import os

from engine.commands import CommandContext
from engine.hw.modbus import ModbusTcp
from engine.hw.modbus_codec import ModbusRegister
from engine.hw.serial_line import SerialExchange, SerialPort
from engine.uod import Axis, Choice, Number, UodBuilder

# The PLC's register map: device id 1, big-endian words and bytes.
PLC_REGISTERS = [
    # A float32 holding register: the feed pump setpoint in %, written by the engine.
    ModbusRegister(tag="Feed Pump", table="holding", address=0, data_type="float32"),
    # An input register: the vessel temperature in steps of 0.1 degC, read every scan.
    ModbusRegister(tag="Temperature", table="input", address=0, data_type="int16", scale=0.1),
    # A coil: the heater contactor, False = off, True = on.
    ModbusRegister(tag="Heater", table="coil", address=0, data_type="bool"),
]

# The stirrer takes "SPEED 300\r\n" and answers "OK\r\n"; any other answer is a refused write.
STIRRER = SerialExchange(
    tag="Stirrer", kind="write", write_template="SPEED {value:.0f}\r\n", pattern=r"^OK$"
)


class BioreactorModel:
    """Stands in for the plant in `simulate`. A process model has three methods:

    set_input(name, value) -- an output tag mapped to input `name` was written; raise
        ValueError for an unknown name or a value out of range.
    step(dt) -- advance the process by dt seconds; read no clock and do no I/O.
    outputs() -- the current sensor values, a mapping of output name to value.
    """

    def __init__(self) -> None:
        self.temperature = 20.0  # degC
        self.inputs = {"Feed Pump": 0.0, "Heater": 0.0, "Stirrer": 0.0}

    def set_input(self, name: str, value: float | str) -> None:
        if name not in self.inputs:
            raise ValueError(f"unknown input {name!r}; inputs are {', '.join(self.inputs)}")
        # A choice arrives by its name ("On"), not its code: the model is the process, not the PLC.
        self.inputs[name] = (
            {"Off": 0.0, "On": 1.0}.get(str(value), 0.0) if name == "Heater" else float(value)
        )

    def step(self, dt: float) -> None:
        target = 20.0 + 60.0 * self.inputs["Heater"] - 0.1 * self.inputs["Feed Pump"]
        tau = 300.0 / (1.0 + self.inputs["Stirrer"] / 300.0)  # stirring heats faster
        self.temperature = target + (self.temperature - target) * math.exp(-dt / tau)

    def outputs(self) -> dict[str, float]:
        return {"Temperature": self.temperature}


def set_feed(cmd: CommandContext, percent: float) -> None:
    cmd.set("Feed Pump", percent)


def set_heater(cmd: CommandContext, state: str) -> None:
    cmd.set("Heater", state)


def set_stirrer(cmd: CommandContext, rpm: float) -> None:
    cmd.set("Stirrer", rpm)


def create() -> object:
    uod = UodBuilder("Bioreactor", author_name="A. Scientist", author_email="a@lab.example")
    host = os.environ.get("SETPOINT_PLC_HOST", "192.168.0.10")
    port = int(os.environ.get("SETPOINT_PLC_PORT", "502"))
    uod.modbus(ModbusTcp(host=host, port=port), PLC_REGISTERS, name="Bioreactor PLC")
    serial_port = SerialPort(url=os.environ.get("SETPOINT_STIRRER_PORT", "/dev/ttyUSB0"))
    uod.serial(serial_port, [STIRRER], name="Stirrer")
    # What `simulate` and run_model run the method on instead of the plant.
    uod.simulation(BioreactorModel)
    uod.entry("Feed Pump", unit="%", safe_value=0.0, minimum=0, maximum=100)
    uod.reading("Temperature", unit="degC")
    uod.choice("Heater", ["Off", "On"], safe_value="Off", codes={"Off": False, "On": True})
    uod.entry("Stirrer", unit="rpm", safe_value=0.0, minimum=0, maximum=1500)
    uod.command("Feed", set_feed, argument=Number(["%"], minimum=0, maximum=100))
    uod.command("Heater", set_heater, argument=Choice(["Off", "On"]))
    uod.command("Stir", set_stirrer, argument=Number(["rpm"], minimum=0, maximum=1500))
    uod.process_value("Temperature")
    uod.process_value_entry("Feed Pump", command="Feed", units=["%"])
    uod.process_value_choice("Heater", {"Heat": "Heater: On", "Off": "Heater: Off"})
    uod.process_value_entry("Stirrer", command="Stir", units=["rpm"])
    uod.subplot(Axis(label="Temperature", tags=["Temperature"], y_min=0, y_max=100))
    uod.subplot(Axis(label="Feed", tags=["Feed Pump"], y_min=0, y_max=100))
    return uod.build()
