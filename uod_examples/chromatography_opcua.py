"""The chromatography skid attached over OPC UA: the same process as chromatography.py, served by
an OPC UA server (the simulator `setpoint-sim opcua --model chromatography`, or a real skid with
the same nodes, engine/simdev/opcua_map.py).

    setpoint-sim opcua --model chromatography --port 4841 &
    setpoint-engine run --uod uod_examples/chromatography_opcua.py \
        --method uod_examples/chromatography_opcua.pcode --start

The endpoint comes from SETPOINT_OPCUA_URL (default opc.tcp://127.0.0.1:4841/setpoint-sim/
chromatography). Values arrive by subscription at the scan interval; the units declared below
are checked against each node's EngineeringUnits when the engine starts. The server runs on its
own clock, so use `run`; `simulate` (and run_model) runs the same process model instead:

    setpoint-engine simulate --uod uod_examples/chromatography_opcua.py \
        --method uod_examples/chromatography_opcua.pcode
"""

from __future__ import annotations

import os

from engine.commands import CommandContext
from engine.hw.opcua import OpcUaClient
from engine.sim.chromatography import ChromatographyModel
from engine.simdev import opcua_map
from engine.uod import Axis, Choice, Number, UodBuilder

INLETS = ["VA01", "VA02", "VA03", "None"]
TAGS = ["PU01", "Inlet", "FT01", "PT01", "UV01", "CT01"]


def set_pump(cmd: CommandContext, percent: float) -> None:
    cmd.set("PU01", percent)


def set_inlet(cmd: CommandContext, valve: str) -> None:
    cmd.set("Inlet", valve)


def create() -> object:
    uod = UodBuilder("Chromatography OPC UA", author_name="Setpoint examples")
    url = os.environ.get("SETPOINT_OPCUA_URL", opcua_map.url())
    uod.opcua(OpcUaClient(url), {tag: opcua_map.NODE_IDS[tag] for tag in TAGS})
    uod.simulation(ChromatographyModel)  # what `setpoint-sim opcua --model chromatography` runs
    uod.define_unit("AU = [absorbance]")
    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100, description="pump")
    uod.choice("Inlet", INLETS, safe_value="None", description="open inlet valve")
    uod.reading("FT01", unit="L/h", description="flow")
    uod.reading("PT01", unit="bar", description="column inlet pressure")
    uod.reading("UV01", unit="mAU", description="UV 280 nm")
    uod.reading("CT01", unit="mS/cm", description="conductivity")
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
