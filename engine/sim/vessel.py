"""A temperature-controlled vessel: heater, stirrer, temperature sensor with lag, dosing pump.

Inputs: "HE01" (heater power, %), "ST01" (stirrer setpoint, rpm), "PU02" (dosing pump, %).
Outputs: "TT01" (temperature, degC), "SI01" (stirrer speed, rpm), "FT02" (dosing flow, mL/min),
"LT01" (liquid volume, mL).

Two thermal lags (heater element, then the liquid) plus a sensor lag give the overshoot and delay
a real jacketed vessel shows; stirring improves heat transfer, so heating without stirring is
slower, which a method author can see in the plot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from engine.sim.model import first_order


@dataclass
class VesselModel:
    heater_power: float = 2000.0  # W at HE01 = 100 %
    heat_capacity_per_ml: float = 4.186  # J/(K mL), water
    initial_volume: float = 1000.0  # mL
    max_volume: float = 2000.0  # mL
    ambient: float = 20.0  # degC
    loss: float = 3.0  # W/K to ambient
    element_tau: float = 5.0  # s
    sensor_tau: float = 3.0  # s
    stirrer_tau: float = 2.0  # s
    max_dose_flow: float = 100.0  # mL/min at PU02 = 100 %
    dose_temperature: float = 20.0  # degC of the dosed liquid

    heater: float = 0.0
    stirrer_setpoint: float = 0.0
    dose_pump: float = 0.0
    element: float = 0.0  # W actually delivered (element lag)
    temperature: float = 20.0
    sensor: float = 20.0
    stirrer: float = 0.0
    volume: float = 0.0
    dose_flow: float = 0.0

    def __post_init__(self) -> None:
        self.temperature = self.sensor = self.ambient
        self.volume = self.initial_volume

    def set_input(self, name: str, value: float | str) -> None:
        number = float(value)
        if math.isnan(number):
            raise ValueError(f"{name} must be a number, not {value!r}")
        if name == "HE01":
            if not 0.0 <= number <= 100.0:
                raise ValueError(f"HE01 must be 0..100 %, not {value!r}")
            self.heater = number
        elif name == "ST01":
            if not 0.0 <= number <= 1500.0:
                raise ValueError(f"ST01 must be 0..1500 rpm, not {value!r}")
            self.stirrer_setpoint = number
        elif name == "PU02":
            if not 0.0 <= number <= 100.0:
                raise ValueError(f"PU02 must be 0..100 %, not {value!r}")
            self.dose_pump = number
        else:
            raise ValueError(f"unknown input {name!r}; inputs are HE01, ST01, PU02")

    def step(self, dt: float) -> None:
        if dt < 0:
            raise ValueError("dt must be >= 0")
        # Sub-steps keep the coupled lags accurate when the caller steps coarsely.
        pieces = max(1, math.ceil(dt / 0.5))
        for _ in range(pieces):
            self._step(dt / pieces)

    def _step(self, dt: float) -> None:
        self.element = first_order(
            self.element, self.heater / 100.0 * self.heater_power, dt, self.element_tau
        )
        self.stirrer = first_order(self.stirrer, self.stirrer_setpoint, dt, self.stirrer_tau)
        full = self.volume >= self.max_volume
        self.dose_flow = 0.0 if full else self.dose_pump / 100.0 * self.max_dose_flow
        added = min(self.dose_flow / 60.0 * dt, self.max_volume - self.volume)
        capacity = self.heat_capacity_per_ml * self.volume
        # Mixing in cold liquid, then heat in minus loss; poor stirring halves the heat uptake.
        if added > 0:
            self.temperature = (self.temperature * self.volume + self.dose_temperature * added) / (
                self.volume + added
            )
            self.volume += added
            capacity = self.heat_capacity_per_ml * self.volume
        uptake = 0.5 + 0.5 * min(1.0, self.stirrer / 300.0)
        power = self.element * uptake - self.loss * (self.temperature - self.ambient)
        self.temperature += power * dt / capacity
        self.sensor = first_order(self.sensor, self.temperature, dt, self.sensor_tau)

    def outputs(self) -> Mapping[str, float | str]:
        return {
            "TT01": round(self.sensor, 6),
            "SI01": round(self.stirrer, 6),
            "FT02": round(self.dose_flow, 6),
            "LT01": round(self.volume, 6),
        }
