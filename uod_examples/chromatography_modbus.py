"""The chromatography skid attached over Modbus TCP: the same process as chromatography.py, but
served by a device (the simulator `setpoint-sim modbus --model chromatography`, or a real skid
with the same register map, engine/simdev/chromatography_map.py).

    setpoint-sim modbus --model chromatography --port 5020 &
    setpoint-engine run --uod uod_examples/chromatography_modbus.py \
        --method uod_examples/chromatography_modbus.pcode --start

The device address comes from SETPOINT_MODBUS_HOST / SETPOINT_MODBUS_PORT (default
127.0.0.1:5020). The device runs on its own clock; `simulate` and run_model use the process
model the simulator serves (uod.simulation below) instead of the device.

The engine feeds the device's watchdog: it changes the heartbeat register every 0.5 s while it
scans and sets the device's communication-loss timeout to 3 s on every connect. If the engine
dies without writing safe values (kill -9, power loss, crashed PC, pulled cable), the device
itself stops the pump and closes the inlet valves 3 s later and sets `Watchdog Tripped`.
"""

from __future__ import annotations

import os

from engine.commands import CommandContext
from engine.hw.modbus import ModbusTcp
from engine.sim.chromatography import ChromatographyModel
from engine.simdev import chromatography_map as chrom
from engine.uod import Axis, Choice, Number, UodBuilder

INLETS = ["VA01", "VA02", "VA03", "None"]


def set_pump(cmd: CommandContext, percent: float) -> None:
    cmd.set("PU01", percent)


def set_inlet(cmd: CommandContext, valve: str) -> None:
    cmd.set("Inlet", valve)


def create() -> object:
    host = os.environ.get("SETPOINT_MODBUS_HOST", "127.0.0.1")
    port = int(os.environ.get("SETPOINT_MODBUS_PORT", str(chrom.DEFAULT_PORT)))
    uod = UodBuilder("Chromatography Modbus", author_name="Setpoint examples")
    device = ModbusTcp(host=host, port=port, heartbeat=chrom.heartbeat(timeout=3.0, period=0.5))
    uod.modbus(device, chrom.CHROMATOGRAPHY_REGISTERS)
    uod.simulation(ChromatographyModel)  # what `setpoint-sim modbus --model chromatography` runs
    uod.define_unit("AU = [absorbance]")
    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100, description="pump")
    uod.choice(
        "Inlet",
        INLETS,
        safe_value="None",
        codes=dict(chrom.INLET_CODES),
        description="open inlet valve",
    )
    uod.reading("FT01", unit="L/h")
    uod.reading("PT01", unit="bar")
    uod.reading("UV01", unit="mAU")
    uod.reading("CT01", unit="mS/cm")
    uod.reading("Heartbeat", description="counts up while the device runs")
    uod.reading("Device Model")
    uod.reading("Pump Running")
    uod.reading("Watchdog Tripped", description="the device went safe: no engine heartbeat")
    uod.volume_totalizer("FT01", unit="L", extra_units=["mL"])
    uod.column_volume(1.0, unit="L")
    uod.command("PU01", set_pump, argument=Number(["%"], minimum=0, maximum=100))
    uod.command("Inlet", set_inlet, argument=Choice(INLETS))
    uod.process_value_entry("PU01", command="PU01", units=["%"])
    uod.process_value_choice(
        "Inlet", {"Buffer A": "Inlet: VA01", "Buffer B": "Inlet: VA02", "Sample": "Inlet: VA03"}
    )
    for tag in ("FT01", "PT01", "UV01", "CT01", "Accumulated CV"):
        uod.process_value(tag)
    uod.subplot(
        Axis(label="UV", tags=["UV01"], y_min=0, y_max=2000, color="#1f77b4"),
        Axis(label="Conductivity", tags=["CT01"], y_min=0, y_max=60, color="#8c564b"),
        color_regions={"Inlet": {"VA01": "#e8f4ff", "VA02": "#fff1e0", "VA03": "#eaf7ea"}},
    )
    uod.subplot(Axis(label="Pressure", tags=["PT01"], y_min=0, y_max=5, color="#d62728"))
    uod.x_axis("Run Time", "Accumulated Volume", "Accumulated CV")
    uod.require_roles("operator")
    uod.alarm(
        "PT01 high",
        "PT01 > 3 bar",
        priority="high",
        delay=2.0,
        deadband=0.2,
        message="Column pressure high: check for a blockage and lower the flow",
        escalation_minutes=10,
    )
    uod.alarm(
        "PT01 high-high",
        "PT01 > 4 bar",
        priority="urgent",
        deadband=0.2,
        message="Column pressure at its limit: stop the pump",
        max_shelve_minutes=0,
        escalation_minutes=2,
    )
    return uod.build()
