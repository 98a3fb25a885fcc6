"""The dosing station's process: the pump and the balance `setpoint-sim serial` serves, coupled.

The same PumpSim and BalanceSim the serial device simulator answers with, driven by model time
instead of the wall clock, so `simulate` and run_model predict what the instruments would do.
Inputs and outputs are named like the tags of uod_examples/dosing.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.simdev.instruments import BalanceSim, PumpSim

INPUTS = ("Pump Command", "Pump Speed", "Pump Direction", "Balance Tare", "Balance Zero")


class DosingModel:
    def __init__(self) -> None:
        self.time = 0.0
        self.pump = PumpSim(clock=lambda: self.time)
        self.balance = BalanceSim(pumped_ml=lambda: self.pump.volume_ml())

    def set_input(self, name: str, value: float | str) -> None:
        if name == "Pump Command":
            command = {"Run": "RUN", "Stop": "STOP"}.get(str(value))
            if command is None:
                raise ValueError(f"Pump Command must be Run or Stop, not {value!r}")
            self.pump.handle(command)
        elif name == "Pump Speed":
            number = float(value)
            if math.isnan(number) or self.pump.handle(f"SPEED {number:.1f}") != "OK":
                raise ValueError(f"Pump Speed must be 0..600 rpm, not {value!r}")
        elif name == "Pump Direction":
            if str(value) not in ("CW", "CCW"):
                raise ValueError(f"Pump Direction must be CW or CCW, not {value!r}")
            self.pump.handle(f"DIR {value}")
        elif name == "Balance Tare":
            self.balance.handle("T")
        elif name == "Balance Zero":
            self.balance.handle("Z")
        else:
            raise ValueError(f"unknown input {name!r}; inputs are {', '.join(INPUTS)}")

    def step(self, dt: float) -> None:
        if dt < 0:
            raise ValueError("dt must be >= 0")
        self.time += dt

    def outputs(self) -> Mapping[str, float | str]:
        self.balance.handle("S")  # the balance reads the pumped volume when asked
        return {
            "Pump State": "RUN" if self.pump.running else "STOP",
            "Pump Speed PV": round(self.pump.speed_rpm, 1),
            "Pump Flow": round(self.pump.flow_ml_min, 2),
            "Pump Direction PV": self.pump.direction,
            "Balance Weight": round(self.balance.net_g, 3),
        }
