"""Simulated serial instruments: command text in, reply text out, with an injected clock.

The balance and the pump are coupled through callables (the CLI wires them to a small state
file) so that the dosing unit's weight rises while its pump runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.hw.base import Clock

ML_PER_REV = 0.8
MAX_RPM = 600.0
DENSITY_G_PER_ML = 1.0
BALANCE_CAPACITY_G = 5000.0


@dataclass
class BalanceSim:
    """A laboratory balance answering a subset of MT-SICS.

    S -> "S S <net> g" (stable weight), SI -> "S S|D <net> g" (immediate; D while the weight
    changes), T -> "T S <tare> g" (tare), Z -> "Z A" (zero), anything else -> "ES".
    Above capacity the weight commands answer "S +" (overload).
    """

    pumped_ml: Callable[[], float] = lambda: 0.0
    initial_g: float = 0.0
    gross_g: float = 0.0
    zero_g: float = 0.0
    tare_g: float = 0.0
    _changing: bool = False

    def _update(self) -> None:
        gross = max(self.initial_g + self.pumped_ml() * DENSITY_G_PER_ML, 0.0)
        self._changing = gross != self.gross_g
        self.gross_g = gross

    @property
    def net_g(self) -> float:
        return self.gross_g - self.zero_g - self.tare_g

    def handle(self, command: str) -> str:
        self._update()
        cmd = command.strip().upper()
        over = self.gross_g - self.zero_g > BALANCE_CAPACITY_G
        if cmd in ("S", "SI"):
            if over:
                return "S +"
            status = "D" if cmd == "SI" and self._changing else "S"
            return f"S {status} {self.net_g:10.3f} g"
        if cmd == "T":
            if over:
                return "T +"
            self.tare_g = self.gross_g - self.zero_g
            return f"T S {self.tare_g:10.3f} g"
        if cmd == "Z":
            self.zero_g = self.gross_g
            self.tare_g = 0.0
            return "Z A"
        return "ES"


_SPEED = re.compile(r"^SPEED\s+(-?\d+(?:\.\d*)?)$")


@dataclass
class PumpSim:
    """A peristaltic pump with a small ASCII command set (one command per CR LF line).

    RUN / STOP / SPEED <rpm> / DIR CW|CCW -> "OK"; STATUS? -> "STATUS RUN|STOP <rpm> CW|CCW";
    SPEED? -> "SPEED <rpm> rpm"; FLOW? -> "FLOW <mL/min> mL/min" (negative when pumping back).
    A speed outside 0..600 rpm -> "ER 2 range"; an unknown command -> "ER 1 unknown command".
    With `comm_timeout` > 0 a running pump that hears no command for that long stops by itself
    (`watch`): the engine polls it several times a second, so silence means the engine is gone.
    """

    clock: Clock
    on_change: Callable[[PumpSim], None] = lambda pump: None
    running: bool = False
    speed_rpm: float = 0.0
    direction: str = "CW"
    comm_timeout: float = 0.0
    _volume_ml: float = 0.0
    _since: float | None = None
    _heard: float | None = None

    def volume_ml(self, now: float | None = None) -> float:
        """Total volume pumped so far (net of pumping back)."""
        now = self.clock() if now is None else now
        if self._since is None:
            return self._volume_ml
        return self._volume_ml + self.flow_ml_min / 60.0 * (now - self._since)

    @property
    def flow_ml_min(self) -> float:
        if not self.running:
            return 0.0
        sign = 1.0 if self.direction == "CW" else -1.0
        return sign * self.speed_rpm * ML_PER_REV

    def handle(self, command: str) -> str:
        cmd = " ".join(command.strip().upper().split())
        now = self._heard = self.clock()
        return self._changing(now, lambda: self._dispatch(cmd))

    def _changing(self, now: float, change: Callable[[], str]) -> str:
        volume, before = self.volume_ml(now), self.flow_ml_min
        reply = change()
        if self.flow_ml_min != before:
            self._volume_ml, self._since = volume, now
            self.on_change(self)
        return reply

    def watch(self, now: float | None = None) -> str | None:
        """Stops a running pump after `comm_timeout` s without a command; says so once."""
        now = self.clock() if now is None else now
        if self.comm_timeout <= 0 or not self.running or self._heard is None:
            return None
        silent = now - self._heard
        if silent < self.comm_timeout:
            return None
        self._changing(now, lambda: self._dispatch("STOP"))
        return f"no command for {silent:.1f} s (timeout {self.comm_timeout:g} s): pump stopped"

    def _dispatch(self, cmd: str) -> str:
        if cmd == "RUN":
            self.running = True
            return "OK"
        if cmd == "STOP":
            self.running = False
            return "OK"
        if cmd in ("DIR CW", "DIR CCW"):
            self.direction = cmd[4:]
            return "OK"
        if m := _SPEED.match(cmd):
            rpm = float(m.group(1))
            if not 0.0 <= rpm <= MAX_RPM:
                return "ER 2 range"
            self.speed_rpm = rpm
            return "OK"
        if cmd == "STATUS?":
            state = "RUN" if self.running else "STOP"
            return f"STATUS {state} {self.speed_rpm:.1f} {self.direction}"
        if cmd == "SPEED?":
            return f"SPEED {self.speed_rpm:.1f} rpm"
        if cmd == "FLOW?":
            return f"FLOW {self.flow_ml_min:.2f} mL/min"
        return "ER 1 unknown command"
