"""Running UOD commands: one call per scan until done, with cancellation and failure handling.

A command function is the UOD author's code, so anything may go wrong in it. The manager turns an
exception into a failed handle with the message, runs `finalize` whatever happened, and reports
the failure to the engine, which pauses the run with safe outputs; the scan loop itself carries on.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.lang.api import LineState

if TYPE_CHECKING:
    from engine.lang.units import Registry
    from engine.uod.definition import CommandSpec
    from protocol.models import ScalarValue


class TagAccess(Mapping[str, "ScalarValue"]):
    """What a command sees of the tags: read any, write outputs through `set`."""

    def __init__(
        self,
        read: Callable[[str], ScalarValue],
        names: Callable[[], list[str]],
        write: Callable[[str, ScalarValue], None],
    ) -> None:
        self._read = read
        self._names = names
        self._write = write

    def __getitem__(self, name: str) -> ScalarValue:
        return self._read(name)

    def __iter__(self) -> Any:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def set(self, name: str, value: ScalarValue) -> None:
        self._write(name, value)


@dataclass
class CommandContext:
    """The `cmd` a command function receives.

    `progress` (0..1) is shown in the run log; `elapsed` is seconds since the command started on
    the scan clock; `iteration` counts calls (0 on the first); `state` tells finalize how it ended.
    """

    name: str
    argument: str | None
    value: Any
    tags: TagAccess
    ureg: Registry
    started: float
    progress: float | None = None
    elapsed: float = 0.0
    iteration: int = 0
    state: LineState = LineState.RUNNING
    data: dict[str, Any] = field(default_factory=dict)  # scratch space kept across calls

    def set(self, tag: str, value: ScalarValue) -> None:
        self.tags.set(tag, value)

    def value_of(self, tag: str) -> ScalarValue:
        return self.tags[tag]


@dataclass(eq=False)
class RunningCommand:
    """The CommandHandle the interpreter polls."""

    spec: CommandSpec
    context: CommandContext
    run_log_id: str
    state: LineState = LineState.RUNNING
    progress: float | None = None
    error: str | None = None
    initialised: bool = False
    suspended: bool = False

    @property
    def done(self) -> bool:
        return self.state is not LineState.RUNNING


@dataclass(frozen=True)
class CommandFailure:
    handle: RunningCommand
    message: str


class CommandManager:
    def __init__(self, commands: Mapping[str, CommandSpec], ureg: Registry) -> None:
        self._commands = commands
        self._ureg = ureg
        self.running: list[RunningCommand] = []

    def names(self) -> list[str]:
        return list(self._commands)

    def validate(self, name: str, argument: str | None) -> str | None:
        spec = self._commands.get(name)
        if spec is None:
            return f"unknown command {name!r}"
        try:
            spec.parser.parse(argument, self._ureg)
        except ValueError as exc:
            return f"{name}: {exc}"
        except Exception as exc:  # a custom parser's bug is still the argument's problem
            return f"{name}: {type(exc).__name__}: {exc}"
        return None

    def start(
        self, name: str, argument: str | None, run_log_id: str, now: float, tags: TagAccess
    ) -> RunningCommand:
        """Parses and queues the command; it first runs in this scan's command phase. Raises
        ValueError for an unknown command or a bad argument."""
        spec = self._commands.get(name)
        if spec is None:
            raise ValueError(f"unknown command {name!r}")
        try:
            value = spec.parser.parse(argument, self._ureg)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        except Exception as exc:
            raise ValueError(f"{name}: {type(exc).__name__}: {exc}") from None
        for other in list(self.running):
            if other.spec.name == name or (
                spec.group is not None and other.spec.group == spec.group
            ):
                self.cancel(other)
        context = CommandContext(name, argument, value, tags, self._ureg, now)
        handle = RunningCommand(spec, context, run_log_id)
        self.running.append(handle)
        return handle

    def cancel(self, handle: object) -> None:
        if not isinstance(handle, RunningCommand) or handle.done:
            return
        handle.state = handle.context.state = LineState.CANCELLED
        self._finish(handle)

    def cancel_all(self) -> None:
        for handle in list(self.running):
            self.cancel(handle)

    def suspend_all(self) -> None:
        """Called on entering Paused: running commands stop being called until Unpause, so they
        cannot drive outputs away from their safe values."""
        for handle in self.running:
            handle.suspended = True

    def resume_all(self) -> None:
        for handle in self.running:
            handle.suspended = False

    def run_scan(self, now: float) -> list[CommandFailure]:
        failures: list[CommandFailure] = []
        for handle in list(self.running):
            if handle.done or handle.suspended:
                continue
            failure = self._call(handle, now)
            if failure is not None:
                failures.append(failure)
        self.running = [h for h in self.running if not h.done]
        return failures

    def _call(self, handle: RunningCommand, now: float) -> CommandFailure | None:
        ctx = handle.context
        spec = handle.spec
        ctx.elapsed = now - ctx.started
        try:
            if not handle.initialised:
                handle.initialised = True
                if spec.init is not None:
                    spec.init(ctx, ctx.value)
            result = spec.run(ctx, ctx.value) if spec.takes_value else spec.run(ctx)
            ctx.iteration += 1
        except Exception as exc:
            message = f"{spec.name}: {_describe(exc)}"
            handle.error = message
            handle.state = ctx.state = LineState.FAILED
            self._finish(handle)
            return CommandFailure(handle, message)
        handle.progress = _clamp(ctx.progress)
        if result is not False:
            handle.progress = 1.0 if handle.progress is not None else None
            handle.state = ctx.state = LineState.COMPLETED
            return self._finish(handle)
        return None

    def _finish(self, handle: RunningCommand) -> CommandFailure | None:
        finalize = handle.spec.finalize
        if finalize is None:
            return None
        try:
            finalize(handle.context)
        except Exception as exc:
            message = f"{handle.spec.name} finalize: {_describe(exc)}"
            if handle.error is None:
                handle.error = message
            handle.state = handle.context.state = LineState.FAILED
            return CommandFailure(handle, message)
        return None


def _clamp(progress: float | None) -> float | None:
    if progress is None:
        return None
    try:
        return min(1.0, max(0.0, float(progress)))
    except (TypeError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    """The message plus the UOD line that raised, so an author can find it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}{where}" if str(exc) else f"{text}{where}"
