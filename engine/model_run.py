"""A unit's method run on the unit's process model instead of its hardware (simulate, run_model).

`for_simulation` is the one place that decides which model a unit is simulated on, so the CLI's
`simulate` and the engine's run_model cannot disagree.
"""

from __future__ import annotations

import dataclasses

from engine.uod.definition import Uod
from engine.uod.simulation_builder import ADVICE


class NoProcessModel(Exception):
    """The unit names no process model; the message says what to add."""


def for_simulation(uod: Uod) -> Uod:
    """The unit with its process model in place of its hardware."""
    if uod.simulation_factory is None:
        raise NoProcessModel(f"unit {uod.name!r} has no process model to simulate on: {ADVICE}")
    return dataclasses.replace(uod, hardware_factory=uod.simulation_factory)
