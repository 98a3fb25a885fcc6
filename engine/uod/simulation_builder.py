"""`uod.simulation(model)`: the process model a unit's methods are simulated on.

`setpoint-engine simulate` and run_model swap the unit's hardware for this model, so a method
can be tried faster than real time before it meets the plant. A unit whose only hardware is
`simulated(...)` needs no declaration: its hardware already is the model.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Self

from engine.uod.draft import Draft, HardwarePart
from engine.uod.hardware_builder import checked_model, model_name

if TYPE_CHECKING:
    from engine.hw.base import Clock, Hardware
    from engine.sim.model import ProcessModel
    from engine.tags import TagSpec
    from protocol.models import ScalarValue

ADVICE = (
    "add uod.simulation(<process model>) to its create(), e.g. "
    "uod.simulation(ChromatographyModel) (docs/uod.md, Simulation)"
)


class SimulationDeclaration:
    """Mixed into UodBuilder; `_line()` is the UOD file's line of the call being made."""

    _d: Draft

    def _line(self) -> int | None:
        raise NotImplementedError

    def simulation(
        self,
        model: ProcessModel | Callable[[], ProcessModel],
        registers: Mapping[str, str] | None = None,
        *,
        description: str | None = None,
    ) -> Self:
        """The process model to simulate this unit on; `registers` maps tag -> model input or
        output, by default every output tag and every reading the model outputs by the same
        name. Choice codes are translated, so the model sees and gives choice names."""
        line = self._line()
        draft = self._d

        def factory(clock: Clock) -> Hardware:
            from engine.sim.hardware import SimulatedHardware

            sim: ProcessModel = checked_model(model, line)
            mapping = dict(registers) if registers is not None else _by_name(draft, sim)
            codes = {
                io: dict(draft.tags[tag].codes)
                for tag, io in mapping.items()
                if tag in draft.tags and draft.tags[tag].codes
            }
            if codes:
                sim = CodedModel(sim, codes)
            return SimulatedHardware(sim, mapping, clock, name=f"model {model_name(model)}")

        name = description or f"process model {model_name(model)}"
        draft.simulation = HardwarePart(factory, name, line)
        return self


def _by_name(draft: Draft, model: ProcessModel) -> dict[str, str]:
    outputs = model.outputs()
    return {name: name for name, spec in draft.tags.items() if _served(spec, outputs)}


def _served(spec: TagSpec, outputs: Mapping[str, object]) -> bool:
    return spec.direction == "output" or (spec.direction == "input" and spec.name in outputs)


class CodedModel:
    """A model seen through the tags' choice codes: the engine writes and reads codes (what a
    device holds), the model takes and gives the choice names."""

    def __init__(self, model: ProcessModel, codes: Mapping[str, Mapping[str, ScalarValue]]):
        self.model = model
        self._encode = codes
        self._decode = {io: {code: c for c, code in table.items()} for io, table in codes.items()}

    def set_input(self, name: str, value: float | str) -> None:
        table = self._decode.get(name)
        if table is not None:
            if value not in table:
                raise ValueError(f"{name}: no choice has code {value!r}")
            value = typing.cast("float | str", table[value])
        self.model.set_input(name, value)

    def step(self, dt: float) -> None:
        self.model.step(dt)

    def outputs(self) -> Mapping[str, float | str]:
        values = dict(self.model.outputs())
        for io, table in self._encode.items():
            if io in values and values[io] in table:
                values[io] = typing.cast("float | str", table[str(values[io])])
        return values
