"""A small simulated unit and a harness that scans it on a fake clock."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.commands import CommandContext
from engine.engine import Engine, EngineEvent
from engine.lang.units import Registry, define_unit, new_unit_registry
from engine.sim.chromatography import ChromatographyModel
from engine.uod import Choice, Number, Uod, UodBuilder

INLETS = ["VA01", "VA02", "VA03", "None"]


def _pump(cmd: CommandContext, value: float) -> None:
    cmd.set("PU01", value)


def _inlet(cmd: CommandContext, value: str) -> None:
    cmd.set("Inlet", value)


def _boom(cmd: CommandContext) -> None:
    raise RuntimeError("the valve driver exploded")


def _slow(cmd: CommandContext, scans: float) -> bool:
    cmd.progress = (cmd.iteration + 1) / scans
    cmd.set("PU01", 10.0 + cmd.iteration)
    return cmd.iteration + 1 >= scans


def _late_boom(cmd: CommandContext) -> bool:
    if cmd.iteration == 2:
        raise ValueError("bad reading in command")
    return False


@functools.cache
def shared_ureg() -> Registry:
    """One unit registry for the whole test session: building one takes ~0.1 s."""
    ureg = new_unit_registry()
    define_unit(ureg, "AU = [absorbance]")
    return ureg


@functools.cache
def toy_uod() -> Uod:
    return build_uod()


def build_uod(extra: Callable[[UodBuilder], object] | None = None) -> Uod:
    uod = UodBuilder("Toy", author_name="tests")
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
    )
    uod.define_unit("AU = [absorbance]")
    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100)
    uod.choice("Inlet", INLETS, safe_value="None")
    uod.reading("FT01", unit="L/h")
    uod.reading("PT01", unit="bar")
    uod.reading("UV01", unit="mAU")
    uod.reading("CT01", unit="mS/cm")
    uod.volume_totalizer("FT01", unit="L", extra_units=["mL"])
    uod.column_volume(0.5, unit="L")
    uod.command("PU01", _pump, argument=Number(["%"], minimum=0, maximum=100), group="pump")
    uod.command("Inlet", _inlet, argument=Choice(INLETS))
    uod.command("Boom", _boom)
    uod.command("Late boom", _late_boom)
    uod.command("Slow", _slow, argument=Number([], minimum=1), group="pump")
    uod.process_value("FT01")
    uod.process_value("PU01")
    if extra is not None:
        extra(uod)
    return uod.build(filename="toy.py", ureg=shared_ureg())


@dataclass
class RecordingSink:
    messages: list[tuple[type[Any], dict[str, Any]]] = field(default_factory=list)

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        kind.model_validate({**fields, "seq": 1})  # every emission must be a valid message
        self.messages.append((kind, fields))

    def of(self, kind: type[Any]) -> list[dict[str, Any]]:
        return [f for k, f in self.messages if k is kind]

    def clear(self) -> None:
        self.messages.clear()


class Harness:
    def __init__(self, uod: Uod | None = None, method: str = "") -> None:
        self.clock = FakeClock(start=1000.0, wall_start=1_700_000_000.0)
        self.sink = RecordingSink()
        self.events: list[EngineEvent] = []
        self.engine = Engine(
            uod or toy_uod(),
            clock=self.clock,
            sink=self.sink,
            method=method,
            computer_name="testpc",
            observers=[self.events.append],
            ureg=shared_ureg(),
        )
        self.engine.apply_safe_outputs(self.clock.monotonic(), remember=False)
        self.engine.scan(self.clock.monotonic())

    @property
    def hw(self) -> Any:
        return self.engine.hardware

    def step(self, scans: int = 1) -> None:
        for _ in range(scans):
            self.clock.advance(self.engine.scan_interval)
            self.engine.scan(self.clock.monotonic())

    def run_for(self, seconds: float) -> None:
        self.step(round(seconds / self.engine.scan_interval))

    def until(self, condition: Callable[[], bool], seconds: float = 60.0) -> None:
        for _ in range(round(seconds / self.engine.scan_interval)):
            if condition():
                return
            self.step()
        assert condition(), "condition not reached in simulated time"

    def value(self, tag: str) -> Any:
        return self.engine.tag_value(tag)

    def model_inputs(self) -> tuple[float, str]:
        model = self.hw.model
        return model.pump_setpoint, model.inlet

    def marks(self) -> list[str]:
        return [e.text for e in self.events if e.kind == "mark"]


@pytest.fixture
def harness() -> Harness:
    return Harness()
