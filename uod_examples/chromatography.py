"""A simulated chromatography skid: pump, inlet valves for buffer A, buffer B and sample, a packed
column, flow meter with totalizer, pressure, UV and conductivity.

Run it:  setpoint-engine simulate --uod uod_examples/chromatography.py \
             --method uod_examples/chromatography.pcode --speed max
"""

from __future__ import annotations

from engine.commands import CommandContext
from engine.sim.chromatography import ChromatographyModel
from engine.uod import Axis, Choice, Number, UodBuilder

MAX_FLOW = 120.0  # L/h at PU01 = 100 %
RAMP = 5.0  # s for the Flow command to reach its setpoint
INLETS = ["VA01", "VA02", "VA03", "None"]


def set_pump(cmd: CommandContext, percent: float) -> None:
    cmd.set("PU01", percent)


def stop_pump(cmd: CommandContext) -> None:
    cmd.set("PU01", 0.0)


def set_inlet(cmd: CommandContext, valve: str) -> None:
    cmd.set("Inlet", valve)


def start_flow(cmd: CommandContext, flow: float) -> None:
    cmd.data["from"] = float(cmd.tags["PU01"] or 0.0)


def flow(cmd: CommandContext, flow: float) -> bool:
    """Ramps the pump to a flow in L/h over RAMP seconds, so the column bed is not shocked."""
    target = flow / MAX_FLOW * 100.0
    fraction = min(1.0, cmd.elapsed / RAMP)
    start = cmd.data["from"]
    cmd.set("PU01", round(start + (target - start) * fraction, 3))
    cmd.progress = fraction
    return fraction >= 1.0


def create() -> object:
    uod = UodBuilder(
        "Chromatography",
        author_name="Setpoint examples",
        author_email="examples@setpoint.invalid",
    )
    uod.simulated(
        ChromatographyModel,
        registers={
            "PU01": "PU01",
            "Inlet": "Inlet",
            "FT01": "FT01",
            "PT01": "PT01",
            "UV01": "UV01",
            "CT01": "CT01",
        },
        description="simulated chromatography skid (ChromatographyModel)",
    )
    uod.define_unit("AU = [absorbance]")

    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100, description="pump setpoint")
    uod.choice("Inlet", INLETS, safe_value="None", description="open inlet valve")
    uod.reading("FT01", unit="L/h", description="flow")
    uod.reading("PT01", unit="bar", description="column inlet pressure")
    uod.reading("UV01", unit="mAU", description="UV 280 nm")
    uod.reading("CT01", unit="mS/cm", description="conductivity")
    uod.volume_totalizer("FT01", unit="L", extra_units=["mL"])
    uod.column_volume(1.0, unit="L")

    pump = Number(["%"], minimum=0, maximum=100)
    uod.command("PU01", set_pump, argument=pump, group="pump", description="pump setpoint")
    uod.command("Stop pump", stop_pump, group="pump", description="pump to 0 %")
    uod.command(
        "Flow",
        flow,
        argument=Number(["L/h", "L/min", "mL/min"], unit="L/h", minimum=0, maximum=MAX_FLOW),
        init=start_flow,
        group="pump",
        description=f"ramp the pump to a flow over {RAMP:g} s",
    )
    uod.command("Inlet", set_inlet, argument=Choice(INLETS), description="select the inlet")

    uod.process_value_entry("PU01", command="PU01", units=["%"])
    uod.process_value_choice(
        "Inlet",
        {
            "Buffer A": "Inlet: VA01",
            "Buffer B": "Inlet: VA02",
            "Sample": "Inlet: VA03",
            "Closed": "Inlet: None",
        },
    )
    for tag in ("FT01", "PT01", "UV01", "CT01", "Accumulated Volume", "Accumulated CV"):
        uod.process_value(tag)

    uod.subplot(
        Axis(label="UV", tags=["UV01"], y_min=0, y_max=2000, color="#1f77b4"),
        Axis(label="Conductivity", tags=["CT01"], y_min=0, y_max=60, color="#8c564b"),
        ratio=2.0,
        color_regions={
            "Inlet": {"VA01": "#e8f4ff", "VA02": "#fff1e0", "VA03": "#eaf7ea", "None": "#f2f2f2"}
        },
    )
    uod.subplot(
        Axis(label="Flow", tags=["FT01"], y_min=0, y_max=MAX_FLOW, color="#2ca02c"),
        Axis(label="Pressure", tags=["PT01"], y_min=0, y_max=5, color="#d62728"),
    )
    uod.x_axis("Run Time", "Accumulated Volume", "Accumulated CV")
    uod.annotations("Mark")
    uod.require_roles("operator")
    uod.data_log_interval(1.0)
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
