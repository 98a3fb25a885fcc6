"""An in-memory engine context for tests, benchmarks and `check` without hardware."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from engine.lang.api import LineState, ScalarValue
from engine.lang.interpreter import Interpreter
from engine.lang.runlog import Event, MarkSet, RunLogChanged, RunLogLine
from engine.lang.units import Registry, new_unit_registry

E = TypeVar("E")


@dataclass
class FakeTag:
    value: ScalarValue = None
    unit: str | None = None
    choices: Sequence[str] | None = None


@dataclass
class FakeCommandSpec:
    """`ticks`: scans until completion (0: completes on the first scan after it started).
    `fail`: the handle fails with this message instead of completing. `raises`: start raises."""

    ticks: int = 0
    pattern: str | None = None
    fail: str | None = None
    raises: str | None = None
    on_start: Callable[[str | None], None] | None = None


@dataclass
class FakeHandle:
    name: str
    argument: str | None
    run_log_id: str
    remaining: int
    total: int
    fail: str | None = None
    state: LineState = LineState.RUNNING
    progress: float | None = None
    error: str | None = None


@dataclass
class FakeContext:
    """Implements `EngineContext`. Call `step(dt)` once per scan before `Interpreter.tick`."""

    ureg: Registry = field(default_factory=new_unit_registry)
    tags: dict[str, FakeTag] = field(default_factory=dict)
    commands: dict[str, FakeCommandSpec] = field(default_factory=dict)
    bases: dict[str, str] = field(default_factory=dict)
    flows: dict[str, float] = field(default_factory=dict)
    simulated: dict[str, tuple[ScalarValue, str | None]] = field(default_factory=dict)
    started: list[FakeHandle] = field(default_factory=list)
    cancelled: list[FakeHandle] = field(default_factory=list)
    running: dict[str, FakeHandle] = field(default_factory=dict)

    def add_tag(
        self,
        name: str,
        value: ScalarValue = None,
        unit: str | None = None,
        choices: Sequence[str] | None = None,
    ) -> None:
        self.tags[name] = FakeTag(value, unit, choices)

    def add_command(self, name: str, **spec: object) -> None:
        self.commands[name] = FakeCommandSpec(**spec)  # type: ignore[arg-type]

    def add_totalizer(self, tag: str, unit: str, per_second: float, bases: Sequence[str]) -> None:
        """An accumulator tag growing by `per_second` each simulated second (a pump into it)."""
        self.add_tag(tag, 0.0, unit)
        self.flows[tag] = per_second
        for base in bases:
            self.bases[base] = tag

    def set_value(self, name: str, value: ScalarValue) -> None:
        self.tags[name].value = value

    def step(self, dt: float) -> None:
        for tag, rate in self.flows.items():
            current = self.tags[tag].value
            self.tags[tag].value = float(current or 0.0) + rate * dt
        for name, handle in list(self.running.items()):
            if handle.state is not LineState.RUNNING:
                del self.running[name]
                continue
            if handle.remaining <= 0:
                del self.running[name]
                if handle.fail is not None:
                    handle.state = LineState.FAILED
                    handle.error = handle.fail
                else:
                    handle.state = LineState.COMPLETED
                    handle.progress = 1.0
            else:
                handle.remaining -= 1
                handle.progress = 1 - handle.remaining / (handle.total + 1)

    # -- AnalyzerContext ----------------------------------------------------------------------

    def tag_names(self) -> Sequence[str]:
        return list(self.tags)

    def tag_unit(self, name: str) -> str | None:
        tag = self.tags.get(name)
        return tag.unit if tag else None

    def tag_choices(self, name: str) -> Sequence[str] | None:
        tag = self.tags.get(name)
        return tag.choices if tag else None

    def command_names(self) -> Sequence[str]:
        return list(self.commands)

    def validate_command(self, name: str, argument: str | None) -> str | None:
        spec = self.commands.get(name)
        if spec is None:
            return f"Unknown command '{name}'"
        if spec.pattern is not None and not re.fullmatch(spec.pattern, argument or ""):
            return f"Argument '{argument}' does not match {spec.pattern}"
        return None

    def base_units(self) -> Mapping[str, str]:
        return self.bases

    # -- EngineContext ------------------------------------------------------------------------

    def tag_value(self, name: str) -> ScalarValue:
        if name in self.simulated:
            return self.simulated[name][0]
        tag = self.tags.get(name)
        return tag.value if tag else None

    def start_command(self, name: str, argument: str | None, run_log_id: str) -> FakeHandle:
        spec = self.commands[name]
        if spec.raises is not None:
            raise RuntimeError(spec.raises)
        other = self.running.get(name)
        if other is not None and other.state is LineState.RUNNING:
            other.state = LineState.CANCELLED
        handle = FakeHandle(name, argument, run_log_id, spec.ticks, spec.ticks, spec.fail)
        self.started.append(handle)
        self.running[name] = handle
        if spec.on_start is not None:
            spec.on_start(argument)
        return handle

    def cancel_command(self, handle: object) -> None:
        assert isinstance(handle, FakeHandle)
        if handle.state is LineState.RUNNING:
            handle.state = LineState.CANCELLED
        self.cancelled.append(handle)

    def simulate(self, tag: str, value: ScalarValue, unit: str | None) -> None:
        self.simulated[tag] = (value, unit)

    def simulate_off(self, tag: str) -> None:
        self.simulated.pop(tag, None)


class Runner:
    """Drives an interpreter on a simulated clock (one scan every `dt` s), recording each event
    with the time of the scan that produced it."""

    def __init__(self, interpreter: Interpreter, context: FakeContext, dt: float = 0.1) -> None:
        self.interpreter = interpreter
        self.context = context
        self.dt = dt
        self.scans = 0
        self.offset = 0.0
        self.events: list[tuple[float, Event]] = []

    @property
    def now(self) -> float:
        return round(self.offset + self.scans * self.dt, 9)

    def collect(self) -> list[Event]:
        new = self.interpreter.drain_events()
        self.events.extend((self.now, e) for e in new)
        return new

    def start(self, user: str | None = None) -> None:
        self.interpreter.start(self.now, user)
        self.collect()

    def step(self) -> None:
        self.scans += 1
        self.context.step(self.dt)
        self.interpreter.tick(self.now)
        self.collect()

    def run_until(self, t: float) -> None:
        while self.now < t - 1e-9:
            self.step()

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def marks(self) -> list[tuple[float, str]]:
        return [(t, e.text) for t, e in self.events if isinstance(e, MarkSet)]

    def mark_texts(self) -> list[str]:
        return [text for _, text in self.marks()]

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def log_lines(self) -> dict[str, RunLogLine]:
        """The latest version of every run-log line, by id."""
        lines: dict[str, RunLogLine] = {}
        for _, event in self.events:
            if isinstance(event, RunLogChanged):
                lines[event.line.id] = event.line
        return lines

    def log_line(self, text: str) -> RunLogLine:
        found = [line for line in self.log_lines().values() if line.text == text]
        assert found, f"no run-log line {text!r}"
        return found[-1]


def interpreter_for(
    text: str, context: FakeContext | None = None, dt: float = 0.1
) -> tuple[Interpreter, FakeContext, Runner]:
    """A loaded interpreter, its fake context and a runner, for tests and benchmarks."""
    context = context if context is not None else FakeContext()
    counter = iter(range(1, 10**9))
    interpreter = Interpreter(context, new_run_id=lambda: f"run-{next(counter)}")
    interpreter.set_method(text)
    interpreter.drain_events()
    return interpreter, context, Runner(interpreter, context, dt)
