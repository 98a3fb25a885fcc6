"""A pseudo-terminal that answers like an instrument, for demos and for tests.

The simulator keeps its own copy of the slave side open so a client may close and reopen the
port (as the recovery machine does) without the master seeing end-of-file.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from engine.simdev.instruments import BalanceSim, PumpSim

Handler = Callable[[str], "str | bytes | None"]


class PtyDevice:
    """Reply text gets CR LF appended; bytes are sent as they are; None means stay silent.
    `tick`, if given, runs at least every 50 ms while serving (an instrument's own timers)."""

    def __init__(
        self,
        handler: Handler,
        terminator: bytes = b"\n",
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.tick = tick
        self.terminator = terminator
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._buffer = b""
        self.lines_received = 0

    def serve(self, stop: threading.Event | None = None) -> None:
        """Answer until `stop` (or `close`) is set."""
        stop = stop or self._stop
        while not stop.is_set() and not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if self.tick is not None:
                self.tick()
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self._buffer += data
            while self.terminator in self._buffer:
                line, self._buffer = self._buffer.split(self.terminator, 1)
                self.lines_received += 1
                reply = self.handler(line.decode("ascii", errors="replace").strip("\r\n"))
                if reply is None:
                    continue
                out = reply if isinstance(reply, bytes) else reply.encode("ascii") + b"\r\n"
                with contextlib.suppress(OSError):
                    os.write(self.master, out)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name=f"pty {self.path}", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def default_state_dir() -> Path:
    return Path(tempfile.gettempdir()) / "setpoint-sim"


class PumpStateFile:
    """Couples the two simulator processes: the pump publishes, the balance integrates."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "pump.json"

    def publish(self, pump: PumpSim) -> None:
        now = time.time()
        state = {"volume_ml": pump.volume_ml(), "flow_ml_min": pump.flow_ml_min, "time": now}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    def pumped_ml(self) -> float:
        try:
            state = json.loads(self.path.read_text())
            elapsed = time.time() - float(state["time"])
            return float(state["volume_ml"]) + float(state["flow_ml_min"]) / 60.0 * elapsed
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0


def make_instrument(
    profile: str,
    state_dir: Path,
    comm_timeout: float = 0.0,
    say: Callable[[str], None] = print,
) -> tuple[Handler, Callable[[], None] | None]:
    """The handler and timer of one instrument; `comm_timeout` (pump only) stops a running pump
    that hears nothing for that long and tells `say`."""
    coupling = PumpStateFile(state_dir)
    if profile == "balance":
        start = coupling.pumped_ml()
        balance = BalanceSim(pumped_ml=lambda: coupling.pumped_ml() - start, initial_g=0.0)
        return balance.handle, None
    if profile == "pump":
        pump = PumpSim(clock=time.time, on_change=coupling.publish, comm_timeout=comm_timeout)
        coupling.publish(pump)

        def tick() -> None:
            if (news := pump.watch()) is not None:
                say(f"serial device: {news}")

        return pump.handle, tick
    raise ValueError(f"unknown serial profile {profile!r}; choose balance or pump")
