"""A chromatography skid: pump, three inlet valves, a packed column and UV/conductivity detectors.

The Modbus device simulator wraps this model too, so the input and output names are a contract:
inputs "PU01" (pump setpoint, %) and "Inlet" ("VA01" buffer A, "VA02" buffer B, "VA03" sample,
"None"); outputs "FT01" (flow, L/h), "PT01" (pressure, bar), "UV01" (mAU), "CT01" (mS/cm).

Transport through tubing and column is modelled as a chain of stirred tanks, driven by the volume
that flows rather than by time: a detector sees a change of inlet after the system volume has
passed, smeared by dispersion, whatever the flow rate. Protein in the sample binds to the column
during load (up to its capacity) and is released when the salt concentration in the column rises
during elution with buffer B, which gives the elution peak an operator expects to see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.sim.model import first_order

INLETS = ("VA01", "VA02", "VA03", "None")


@dataclass(frozen=True)
class Feed:
    """Composition of what an inlet delivers."""

    conductivity: float  # mS/cm
    uv_unbound: float  # mAU of material that passes the column unbound
    protein: float  # g/L of binding protein


@dataclass
class ChromatographyModel:
    max_flow: float = 120.0  # L/h at PU01 = 100 %
    pump_tau: float = 1.0  # s, pump ramp time constant
    column_volume: float = 1.0  # L
    system_volume: float = 0.25  # L of tubing and column void between inlet and detectors
    tanks: int = 12  # more tanks: less dispersion
    base_pressure: float = 0.1  # bar with no flow
    pressure_per_flow: float = 0.02  # bar per L/h (packed bed, linear)
    pressure_quadratic: float = 0.0001  # bar per (L/h)^2 (tubing)
    capacity: float = 1.0  # g of protein the column binds
    uv_per_protein: float = 1000.0  # mAU per g/L of protein at the detector
    elution_conductivity: float = 25.0  # mS/cm above which bound protein is released
    release_rate: float = 0.05  # 1/s at full salt excess
    feeds: dict[str, Feed] = field(
        default_factory=lambda: {
            "VA01": Feed(conductivity=1.5, uv_unbound=0.0, protein=0.0),
            "VA02": Feed(conductivity=50.0, uv_unbound=2.0, protein=0.0),
            "VA03": Feed(conductivity=12.0, uv_unbound=150.0, protein=1.0),
            "None": Feed(conductivity=0.0, uv_unbound=0.0, protein=0.0),
        }
    )

    pump_setpoint: float = 0.0
    inlet: str = "None"
    flow: float = 0.0
    bound: float = 0.0  # g protein on the column
    _salt: list[float] = field(default_factory=list)
    _uv: list[float] = field(default_factory=list)
    _protein: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        start = self.feeds["VA01"]
        self._salt = [start.conductivity] * self.tanks
        self._uv = [start.uv_unbound] * self.tanks
        self._protein = [0.0] * self.tanks

    def set_input(self, name: str, value: float | str) -> None:
        if name == "PU01":
            number = float(value)
            if not 0.0 <= number <= 100.0 or math.isnan(number):
                raise ValueError(f"PU01 must be 0..100 %, not {value!r}")
            self.pump_setpoint = number
        elif name == "Inlet":
            if value not in INLETS:
                raise ValueError(f"Inlet must be one of {', '.join(INLETS)}, not {value!r}")
            self.inlet = str(value)
        else:
            raise ValueError(f"unknown input {name!r}; inputs are PU01, Inlet")

    def step(self, dt: float) -> None:
        if dt < 0:
            raise ValueError("dt must be >= 0")
        if dt == 0:
            return
        # A pump cannot draw through closed valves.
        target = 0.0 if self.inlet == "None" else self.pump_setpoint / 100.0 * self.max_flow
        self.flow = first_order(self.flow, target, dt, self.pump_tau)
        volume = self.flow / 3600.0 * dt  # L that moved in this step
        if volume <= 0:
            return  # nothing moves, so nothing reaches the detectors
        # Split large steps so that no step moves more than one tank volume.
        tank_volume = self.system_volume / self.tanks
        pieces = max(1, math.ceil(volume / tank_volume))
        for _ in range(pieces):
            self._advance(volume / pieces, dt / pieces, tank_volume)

    def _advance(self, volume: float, dt: float, tank_volume: float) -> None:
        feed = self.feeds[self.inlet]
        exchange = 1.0 - math.exp(-volume / tank_volume)
        protein_in = feed.protein
        room = max(0.0, self.capacity - self.bound)
        binding = self._salt[0] < self.elution_conductivity
        captured = min(protein_in * volume, room) if binding else 0.0
        self.bound += captured
        protein_in -= captured / volume
        # Each tank mixes towards what flows in from the one upstream (the feed for the first).
        # Plain locals, no tuple per tank: this runs every scan of a simulated unit.
        salt, uv, protein = self._salt, self._uv, self._protein
        up_salt, up_uv, up_protein = feed.conductivity, feed.uv_unbound, protein_in
        for i in range(self.tanks):
            s, u, p = salt[i], uv[i], protein[i]
            salt[i] = up_salt = s + (up_salt - s) * exchange
            uv[i] = up_uv = u + (up_uv - u) * exchange
            protein[i] = up_protein = p + (up_protein - p) * exchange
        released = self._release(dt)
        if released:
            self._protein[0] += released / tank_volume

    def _release(self, dt: float) -> float:
        excess = self._salt[0] - self.elution_conductivity
        if excess <= 0 or self.bound <= 0:
            return 0.0
        fraction = 1.0 - math.exp(-self.release_rate * min(1.0, excess / 10.0) * dt)
        released = self.bound * fraction
        self.bound -= released
        return released

    def outputs(self) -> Mapping[str, float | str]:
        pressure = (
            self.base_pressure
            + self.pressure_per_flow * self.flow
            + self.pressure_quadratic * self.flow * self.flow
        )
        uv = self._uv[-1] + self.uv_per_protein * self._protein[-1]
        # At the resolution the instruments report (a flow meter to 0.01 L/h, a pressure
        # transmitter to 1 mbar, a UV monitor to 0.001 mAU, a conductivity cell to 1 µS/cm), not
        # to 1e-6 of model noise: what a real skid sends, and what the aggregator stores
        # losslessly in under 2 bytes a value (docs/data.md, Storage of samples).
        return {
            "FT01": round(self.flow, 2),
            "PT01": round(pressure, 3),
            "UV01": round(uv, 3),
            "CT01": round(self._salt[-1], 3),
        }
