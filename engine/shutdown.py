"""The safe shutdown of `setpoint-engine run`: the process never exits with a pump still running.

However `run` ends (Ctrl+C, SIGTERM, SIGHUP from a closed terminal or SSH session, SIGQUIT,
Ctrl+Break, a Windows console close, logoff or system shutdown, an exception escaping the scan
or the link, or the loop ending for any other reason), the same sequence runs before the process
exits:

1. refuse further operator requests and stop the run (RunStopped is reported);
2. cancel every command and write every output's safe value;
3. wait (at most `safe_timeout` s) until the hardware confirms them (`Hardware.settle_outputs`:
   read back where the driver can, accepted by the device otherwise);
4. record what was done, and every output that could not be made safe, in the engine's error
   log (so it reaches the aggregator) and on stderr; stop the hardware;
5. hand the outbox to the aggregator (at most `flush_timeout` s); what is not acknowledged stays
   on disk and goes at the next start.

The exit code is non-zero when an output could not be made safe (EXIT_UNSAFE) or when the
engine itself failed (EXIT_FAILED). Nothing here can help against SIGKILL, a power loss or a
crashed PC: only the device's own watchdog can.

Interrupts during the shutdown: writing and confirming the safe values is never cut short. A
second request (Ctrl+C again) is honoured once they are confirmed: the engine then exits without
waiting for the aggregator to acknowledge the outbox; one that comes while that wait is already
running ends it at once. `ShutdownControl` makes these decisions without any I/O; `shut_down` and
`install_interrupts` are the thin shell around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from engine.describe import describe
from engine.hw.base import OutputCheck, OutputResult, ScalarValue

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("engine.shutdown")

EXIT_OK = 0
EXIT_UNSAFE = 3  # an output could not be made safe: someone must check the unit
EXIT_FAILED = 4  # the engine failed (an exception in the scan or the link); outputs are safe

DEFAULT_SAFE_TIMEOUT = 5.0
DEFAULT_FLUSH_TIMEOUT = 10.0


class Phase(StrEnum):
    RUNNING = "running"
    SAFING = "safing"  # stopping the run, writing and confirming the safe values
    FLUSHING = "flushing"  # waiting for the aggregator to acknowledge the outbox
    DONE = "done"


class Reaction(StrEnum):
    """What the shell does about one shutdown request."""

    BEGIN = "begin"  # the first request: start the safe shutdown
    AFTER_SAFE = "after-safe"  # noted: the flush is skipped once the safe values are confirmed
    END_FLUSH = "end-flush"  # stop waiting for the aggregator now
    IGNORED = "ignored"  # nothing left to hurry


class ShutdownControl:
    """Which shutdown request does what, by phase (sans-I/O)."""

    def __init__(self) -> None:
        self.phase = Phase.RUNNING
        self.reason: str | None = None
        self.failure: str | None = None  # set when the engine itself failed
        self.hurry = False
        self.requests = 0

    def request(self, reason: str, *, failure: bool = False) -> Reaction:
        self.requests += 1
        if failure and self.failure is None:
            self.failure = reason
        if self.phase is Phase.RUNNING:
            self.phase = Phase.SAFING
            self.reason = reason
            return Reaction.BEGIN
        if self.phase is Phase.SAFING:
            self.hurry = True
            return Reaction.AFTER_SAFE
        if self.phase is Phase.FLUSHING:
            self.hurry = True
            return Reaction.END_FLUSH
        return Reaction.IGNORED

    def begin(self, reason: str) -> bool:
        """The run loop ended without a request (an error, or it simply returned): shut down
        for `reason`. False when a shutdown is already under way."""
        if self.phase is not Phase.RUNNING:
            return False
        self.request(reason)
        return True

    def outputs_settled(self) -> bool:
        """Safe values confirmed (or their time is up): True when the outbox is to be flushed,
        False when an operator asked again meanwhile and wants the process to end."""
        self.phase = Phase.FLUSHING
        return not self.hurry

    def finished(self) -> None:
        self.phase = Phase.DONE


@dataclass(frozen=True)
class Assessment:
    """The outputs after settling: made safe or not, each with the line that says so."""

    safe: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)  # one line per output not made safe
    other: list[str] = field(default_factory=list)  # outputs without a safe value

    def summary(self, seconds: float) -> str:
        if not self.unsafe:
            return f"safe values confirmed for {len(self.safe)} output(s) in {seconds:.2f} s"
        return (
            f"{len(self.unsafe)} output(s) NOT made safe within {seconds:.2f} s; check the unit "
            f"by hand ({len(self.safe)} output(s) safe)"
        )


def assess(
    results: Sequence[OutputResult],
    safe_values: Mapping[str, ScalarValue],
) -> Assessment:
    """`safe_values`: the hardware value (as written) of every output that has one. An output
    with a safe value counts as safe only when the driver's last word on it confirms (or says
    the device accepted) exactly that value; one the driver did not report at all is not safe."""
    safe: list[str] = []
    unsafe: list[str] = []
    other: list[str] = []
    latest = {result.tag: result for result in results}  # a later result supersedes
    for result in latest.values():
        wanted = safe_values.get(result.tag)
        if wanted is None:
            other.append(f"{result.tag}: no safe value declared; left at {result.value!r}")
        elif result.safe and _same(result.value, wanted):
            safe.append(result.tag)
        elif result.safe:
            unsafe.append(f"{result.tag}: holds {result.value!r}, its safe value is {wanted!r}")
        else:
            detail = f": {result.detail}" if result.detail else ""
            unsafe.append(
                f"{result.tag}: safe value {wanted!r} not confirmed ({result.check.value}{detail})"
            )
    for tag in sorted(set(safe_values) - set(latest)):
        unsafe.append(f"{tag}: safe value {safe_values[tag]!r} not confirmed (driver did not say)")
    return Assessment(safe, unsafe, other)


def _same(held: ScalarValue, wanted: ScalarValue) -> bool:
    if isinstance(held, bool) or isinstance(wanted, bool):
        return held == wanted
    if isinstance(held, int | float) and isinstance(wanted, int | float):
        return math.isclose(float(held), float(wanted), rel_tol=1e-6, abs_tol=1e-9)
    return held == wanted


def exit_code(assessment: Assessment, control: ShutdownControl) -> int:
    if assessment.unsafe:
        return EXIT_UNSAFE
    if control.failure is not None:
        return EXIT_FAILED
    return EXIT_OK


# ---- the I/O shell --------------------------------------------------------------------------


class Flushable(Protocol):
    """The link, as the shutdown needs it (engine.link.client.EngineLink)."""

    def flush(self) -> int: ...

    async def wait_acked(self, seq: int, timeout: float) -> bool: ...

    async def stop(self, flush_timeout: float = ...) -> None: ...


@dataclass
class ShutdownReport:
    reason: str
    assessment: Assessment
    seconds: float
    flushed: bool | None  # None: no link, or the flush was skipped
    code: int


async def shut_down(
    engine: Engine,
    control: ShutdownControl,
    *,
    user: str,
    link: Flushable | None = None,
    safe_timeout: float = DEFAULT_SAFE_TIMEOUT,
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    end_flush: asyncio.Event | None = None,
) -> ShutdownReport:
    """The whole sequence of the module docstring. Never raises for device or link trouble: it
    records it and says so in the exit code; the process must get to its end either way."""
    control.begin("the run loop ended")
    reason = control.reason or "shutdown"
    loop = asyncio.get_running_loop()
    started = loop.time()
    log.info("%s: stopping the run and writing safe values", reason)
    engine.record("info", f"shutting down ({reason}): stopping the run, writing safe values")
    _stop_run(engine, user, reason)
    results = await _settle(engine, safe_timeout)
    assessment = assess(results, engine.safe_output_codes())
    seconds = loop.time() - started
    _record(engine, assessment, seconds)
    try:
        await engine.stop()
    except Exception as exc:
        log.error("stopping the hardware failed: %s", describe(exc))
    flush = control.outputs_settled()
    engine.final_report()
    flushed: bool | None = None
    if link is not None:
        flushed = await _flush(link, flush_timeout if flush else 0.0, end_flush)
    elif not flush:
        log.info("exiting without waiting any further")
    control.finished()
    return ShutdownReport(reason, assessment, seconds, flushed, exit_code(assessment, control))


def _stop_run(engine: Engine, user: str, reason: str) -> None:
    """Each step on its own: a failing one must not keep the outputs from going safe."""
    from engine.lang.api import SystemState
    from protocol.models import ControlAction

    engine.refuse_requests(f"the engine is shutting down ({reason})")
    if engine.state is not SystemState.STOPPED:
        try:
            engine.control(ControlAction.STOP, user)
        except Exception as exc:
            log.error("stopping the run failed: %s", describe(exc))
    try:
        engine.make_outputs_safe()
    except Exception as exc:
        log.error("writing safe values failed: %s", describe(exc))


# Beyond `safe_timeout`: a driver started only for the settling also stops again inside it (a
# serial thread's join may take 5 x its port timeout + 1 s).
SETTLE_MARGIN = 10.0


async def _settle(engine: Engine, timeout: float) -> list[OutputResult]:
    """The driver bounds its own wait; the margin here only guards against a driver bug."""
    try:
        async with asyncio.timeout(timeout + SETTLE_MARGIN):
            return await engine.hardware.settle_outputs(timeout)
    except Exception as exc:
        why = "no answer in time" if isinstance(exc, TimeoutError) else describe(exc)
        log.error("confirming the safe values failed: %s", why)
        return [
            OutputResult(tag, value, OutputCheck.FAILED, why)
            for tag, value in engine.safe_output_codes().items()
        ]


def _record(engine: Engine, assessment: Assessment, seconds: float) -> None:
    summary = assessment.summary(seconds)
    level: Literal["info", "error"] = "error" if assessment.unsafe else "info"
    engine.record(level, summary)
    log.log(logging.ERROR if assessment.unsafe else logging.INFO, "%s", summary)
    for line in assessment.unsafe:
        engine.record("error", f"NOT SAFE: {line}")
        log.error("NOT SAFE: %s", line)
    for line in assessment.other:
        engine.record("info", line)
        log.info("%s", line)


async def _flush(link: Flushable, timeout: float, end: asyncio.Event | None) -> bool:
    """Waits for the acknowledgement of everything emitted (ended early by `end`), then stops
    the link; the outbox keeps what was not acknowledged."""
    delivered = False
    try:
        high = link.flush()
    except Exception as exc:
        log.error("committing the outbox failed: %s", describe(exc))
        timeout = 0.0
    if timeout > 0:
        log.info("handing the outbox to the aggregator (at most %.0f s)", timeout)
        waiting = asyncio.ensure_future(link.wait_acked(high, timeout))
        waits: set[asyncio.Future[Any]] = {waiting}
        ender = asyncio.ensure_future(end.wait()) if end is not None else None
        if ender is not None:
            waits.add(ender)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        delivered = (
            waiting.done()
            and not waiting.cancelled()
            and waiting.exception() is None
            and waiting.result() is True
        )
    try:
        await link.stop(flush_timeout=0.0)
    except Exception as exc:
        log.error("closing the link failed: %s", describe(exc))
    return delivered


# ---- interrupts -----------------------------------------------------------------------------

_SIGNALS: tuple[tuple[str, str], ...] = (
    ("SIGINT", "Ctrl+C (SIGINT)"),
    ("SIGTERM", "SIGTERM"),
    ("SIGHUP", "SIGHUP (terminal closed or SSH session dropped)"),  # POSIX only
    ("SIGQUIT", "SIGQUIT"),  # POSIX only (Ctrl+\\): no core dump with the pump running
    ("SIGBREAK", "Ctrl+Break"),  # Windows only
)


def install_interrupts(
    loop: asyncio.AbstractEventLoop,
    on_request: Callable[[str], None],
    finished: threading.Event,
    console_wait: float,
) -> Callable[[], None]:
    """Routes every way of being asked to end to `on_request(reason)` on the loop; returns the
    function that removes them again. On Windows, also the console's close, logoff and shutdown
    events (SetConsoleCtrlHandler): Windows ends the process as soon as that handler returns, so
    it waits (at most `console_wait` s) until `finished` is set by the end of the shutdown."""
    removers: list[Callable[[], None]] = []
    for name, label in _SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            removers.append(_install_signal(loop, signum, label, on_request))
    console = _install_console_handler(loop, on_request, finished, console_wait)
    if console is not None:
        removers.append(console)

    def remove() -> None:
        for remover in reversed(removers):
            with contextlib.suppress(Exception):
                remover()

    return remove


def _install_signal(
    loop: asyncio.AbstractEventLoop, signum: int, label: str, on_request: Callable[[str], None]
) -> Callable[[], None]:
    try:
        loop.add_signal_handler(signum, on_request, label)
    except (NotImplementedError, RuntimeError):
        pass  # Windows' event loop: plain signal handlers, handed over to the loop
    else:

        def remove_loop_handler() -> None:
            loop.remove_signal_handler(signum)

        return remove_loop_handler

    def handler(_signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(on_request, label)

    previous = signal.signal(signum, handler)

    def restore() -> None:
        signal.signal(signum, previous)

    return restore


def _install_console_handler(
    loop: asyncio.AbstractEventLoop,
    on_request: Callable[[str], None],
    finished: threading.Event,
    wait: float,
) -> Callable[[], None] | None:
    """Windows only (not testable on Linux, where it does nothing)."""
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    events = {2: "console window closed", 5: "user logoff", 6: "system shutdown"}

    def handler(event: int) -> bool:
        if event not in events:
            return False  # Ctrl+C and Ctrl+Break: the SIGINT/SIGBREAK handlers take them
        loop.call_soon_threadsafe(on_request, events[event])
        finished.wait(wait)
        return True

    handler_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)
    c_handler = handler_type(handler)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    if not kernel32.SetConsoleCtrlHandler(c_handler, True):
        return None

    def remove() -> None:
        kernel32.SetConsoleCtrlHandler(c_handler, False)

    return remove
