"""A simulated temperature-controlled vessel: heater, stirrer, temperature sensor with thermal lag
and a dosing pump counted by a totalizer.

Run it:  setpoint-engine simulate --uod uod_examples/vessel.py \
             --method uod_examples/vessel.pcode --speed max
"""

from __future__ import annotations

from engine.commands import CommandContext
from engine.sim.vessel import VesselModel
from engine.uod import Axis, Number, UodBuilder

GAIN = 25.0  # % heater per degC below the setpoint
DEVIATION_DELAY = 300.0  # s: longer than heating up to a new setpoint takes


def set_heater(cmd: CommandContext, percent: float) -> None:
    cmd.set("HE01", percent)


def set_stirrer(cmd: CommandContext, rpm: float) -> None:
    cmd.set("ST01", rpm)


def set_dose_pump(cmd: CommandContext, percent: float) -> None:
    cmd.set("PU02", percent)


def temperature(cmd: CommandContext, setpoint: float) -> bool:
    """A proportional controller: runs every scan until cancelled (by Heater or a new setpoint).

    Progress shows how far the vessel has come from where it started towards the setpoint."""
    measured = float(cmd.tags["TT01"] or 0.0)
    if cmd.iteration == 0:
        cmd.data["from"] = measured
        cmd.set("Temperature Setpoint", setpoint)
    power = max(0.0, min(100.0, GAIN * (setpoint - measured)))
    cmd.set("HE01", round(power, 2))
    span = setpoint - cmd.data["from"]
    if span > 0:
        cmd.progress = max(0.0, min(1.0, (measured - cmd.data["from"]) / span))
    return False


def heater_off(cmd: CommandContext) -> None:
    cmd.set("HE01", 0.0)


def create() -> object:
    uod = UodBuilder("Vessel", author_name="Setpoint examples")
    uod.simulated(
        VesselModel,
        registers={
            "HE01": "HE01",
            "ST01": "ST01",
            "PU02": "PU02",
            "TT01": "TT01",
            "SI01": "SI01",
            "FT02": "FT02",
            "LT01": "LT01",
        },
        description="simulated jacketed vessel (VesselModel)",
    )
    uod.entry("HE01", unit="%", safe_value=0.0, minimum=0, maximum=100, description="heater")
    uod.entry(
        "ST01", unit="rpm", safe_value=0.0, minimum=0, maximum=1500, description="stirrer setpoint"
    )
    uod.entry("PU02", unit="%", safe_value=0.0, minimum=0, maximum=100, description="dosing pump")
    uod.entry(
        "Temperature Setpoint",
        unit="degC",
        direction="none",
        description="setpoint of the Temperature controller",
    )
    uod.reading("TT01", unit="degC", description="vessel temperature")
    uod.reading("SI01", unit="rpm", description="stirrer speed")
    uod.reading("FT02", unit="mL/min", description="dosing flow")
    uod.reading("LT01", unit="mL", description="liquid volume")
    uod.volume_totalizer("FT02", unit="mL", extra_units=["L"])

    uod.command(
        "Heater",
        set_heater,
        argument=Number(["%"], minimum=0, maximum=100),
        group="heating",
        finalize=None,
        description="fixed heater power",
    )
    uod.command(
        "Temperature",
        temperature,
        argument=Number(["degC"], minimum=0, maximum=90),
        group="heating",
        finalize=heater_off,
        description="hold the vessel at a temperature (runs until cancelled)",
    )
    uod.command("Stirrer", set_stirrer, argument=Number(["rpm"], minimum=0, maximum=1500))
    uod.command("Dose pump", set_dose_pump, argument=Number(["%"], minimum=0, maximum=100))

    for tag in ("TT01", "Temperature Setpoint", "SI01", "FT02", "Accumulated Volume", "LT01"):
        uod.process_value(tag)
    uod.process_value_entry("ST01", command="Stirrer", units=["rpm"])
    uod.subplot(
        Axis(
            label="Temperature",
            tags=["TT01", "Temperature Setpoint"],
            y_min=15,
            y_max=50,
            color="#d62728",
        ),
        Axis(label="Heater", tags=["HE01"], y_min=0, y_max=100, color="#ff7f0e"),
        ratio=2.0,
    )
    uod.subplot(
        Axis(label="Dosed", tags=["Accumulated Volume"], y_min=0, color="#1f77b4"),
        Axis(label="Stirrer", tags=["SI01"], y_min=0, y_max=1500, color="#7f7f7f"),
    )
    uod.x_axis("Run Time", "Accumulated Volume")
    uod.deviation_alarm(
        "Temperature Setpoint",
        "TT01",
        3.0,
        name="TT01 deviation",
        priority="medium",
        delay=DEVIATION_DELAY,
        deadband=0.5,
        message="Vessel temperature is off its setpoint: check the heater and the stirrer",
        suppress_when="System State != Running",
    )
    return uod.build()
