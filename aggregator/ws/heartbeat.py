"""When to ping a websocket client and when to give up on it (sans-I/O, fed the time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Heartbeat:
    interval: float = 10.0
    timeout: float = 30.0
    last_received: float = 0.0
    last_sent: float = 0.0

    def start(self, now: float) -> None:
        self.last_received = now
        self.last_sent = now

    def received(self, now: float) -> None:
        """Any frame from the client proves it is alive, not only a pong."""
        self.last_received = now

    def ping_due(self, now: float) -> bool:
        return now - self.last_sent >= self.interval

    def sent(self, now: float) -> None:
        self.last_sent = now

    def expired(self, now: float) -> bool:
        return now - self.last_received >= self.timeout

    def next_wakeup(self, now: float) -> float:
        """Seconds until something is due: the next ping or the timeout."""
        return max(
            0.0, min(self.last_sent + self.interval, self.last_received + self.timeout) - now
        )
