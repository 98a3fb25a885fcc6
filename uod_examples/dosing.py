"""A dosing station on two serial lines: a peristaltic pump and a laboratory balance.

The pump speaks a line protocol (SPEED, RUN/STOP, FLOW?, STATUS?), the balance a subset of
MT-SICS (S, T, Z); see engine/simdev/profiles.py. The balance gives the `g` base unit, so a
method can dose by weight: `Base: g` / `Block: Dose` / `    50 End block`.

    setpoint-sim serial --profile pump       # prints "serial device: /dev/pts/N"
    setpoint-sim serial --profile balance    # prints "serial device: /dev/pts/M"
    SETPOINT_PUMP_PORT=/dev/pts/N SETPOINT_BALANCE_PORT=/dev/pts/M \\
        setpoint-engine run --uod uod_examples/dosing.py --method uod_examples/dosing.pcode --start

The instruments run on their own clock; `simulate` and run_model use DosingModel, the same pump
and balance the serial simulator serves (uod.simulation below).
"""

from __future__ import annotations

import os

from engine.commands import CommandContext
from engine.sim.dosing import DosingModel
from engine.simdev.instruments import MAX_RPM, ML_PER_REV
from engine.simdev.profiles import BALANCE_EXCHANGES, PUMP_EXCHANGES, balance_port, pump_port
from engine.uod import Axis, Choice, Number, UodBuilder

TARE_TIMEOUT = 3.0  # s


def set_pump(cmd: CommandContext, state: str) -> None:
    cmd.set("Pump Command", state)


def set_speed(cmd: CommandContext, rpm: float) -> None:
    cmd.set("Pump Speed", rpm)


def set_flow(cmd: CommandContext, ml_min: float) -> None:
    cmd.set("Pump Speed", round(ml_min / ML_PER_REV, 1))


def set_direction(cmd: CommandContext, direction: str) -> None:
    cmd.set("Pump Direction", direction)


def tare(cmd: CommandContext) -> bool:
    """Tares and waits until the balance reads about zero (or gives up after a few seconds)."""
    if cmd.iteration == 0:
        cmd.set("Balance Tare", 1.0)
        return False
    weight = cmd.tags["Balance Weight"]
    if isinstance(weight, float) and abs(weight) < 0.5:
        return True
    if cmd.elapsed > TARE_TIMEOUT:
        raise TimeoutError(f"balance still reads {weight} g after taring")
    return False


def create() -> object:
    pump_url = os.environ.get("SETPOINT_PUMP_PORT", "/dev/ttyUSB0")
    balance_url = os.environ.get("SETPOINT_BALANCE_PORT", "/dev/ttyUSB1")
    uod = UodBuilder("Dosing", author_name="Setpoint examples")
    # Two serial lines; the engine combines them and tells which one failed, if one does.
    uod.serial(pump_port(pump_url), PUMP_EXCHANGES, name=f"pump {pump_url}")
    uod.serial(balance_port(balance_url), BALANCE_EXCHANGES, name=f"balance {balance_url}")
    uod.simulation(DosingModel)  # the pump and balance `setpoint-sim serial` serves, coupled
    uod.choice("Pump Command", ["Run", "Stop"], safe_value="Stop")
    uod.entry("Pump Speed", unit="rpm", safe_value=0.0, minimum=0, maximum=MAX_RPM)
    uod.choice("Pump Direction", ["CW", "CCW"], command_only=True)
    uod.entry("Balance Tare", command_only=True, description="any write tares the balance")
    uod.entry("Balance Zero", command_only=True, description="any write zeroes the balance")
    uod.reading("Pump State", choices=["RUN", "STOP"])
    uod.reading("Pump Speed PV", unit="rpm")
    uod.reading("Pump Flow", unit="mL/min")
    uod.reading("Pump Direction PV", choices=["CW", "CCW"])
    uod.reading("Balance Weight", unit="g")
    uod.volume_totalizer("Pump Flow", unit="mL", extra_units=["L"])
    uod.base_unit("g", tag="Balance Weight")
    uod.base_unit("kg", tag="Balance Weight")

    uod.command("Pump", set_pump, argument=Choice(["Run", "Stop"]))
    uod.command(
        "Pump speed", set_speed, argument=Number(["rpm"], minimum=0, maximum=MAX_RPM), group="speed"
    )
    uod.command(
        "Pump flow",
        set_flow,
        argument=Number(["mL/min", "L/h"], unit="mL/min", minimum=0, maximum=MAX_RPM * ML_PER_REV),
        group="speed",
    )
    uod.command("Pump direction", set_direction, argument=Choice(["CW", "CCW"]))
    uod.command("Tare", tare, description="tare the balance and wait for zero")

    uod.process_value_choice("Pump State", {"Run": "Pump: Run", "Stop": "Pump: Stop"})
    uod.process_value_entry("Pump Speed PV", command="Pump speed", units=["rpm"])
    for tag in ("Pump Flow", "Balance Weight", "Accumulated Volume"):
        uod.process_value(tag)
    uod.subplot(
        Axis(label="Weight", tags=["Balance Weight"], y_min=0, color="#1f77b4"),
        Axis(label="Flow", tags=["Pump Flow"], y_min=0, color="#2ca02c"),
        color_regions={"Pump State": {"RUN": "#eaf7ea", "STOP": "#f2f2f2"}},
    )
    uod.x_axis("Run Time", "Accumulated Volume", "Balance Weight")
    return uod.build()
