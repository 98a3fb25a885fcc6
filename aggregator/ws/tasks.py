"""Every websocket action is a task reporting its progress as a stream of status frames.

Sans-I/O: the task is fed the current time and its outcome; it never reads a clock itself, so the
elapsed-time fields can be tested exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import JsonValue

TaskStatus = Literal["pending", "working", "finished", "exception", "interrupted"]
TERMINAL: frozenset[str] = frozenset({"finished", "exception", "interrupted"})


@dataclass
class Task:
    id: str
    action: str
    created: float
    total: int = 1
    status: TaskStatus = "pending"
    message: str = ""
    progress: float = 0.0
    intermediate: JsonValue = None
    final: JsonValue = None
    started: float | None = None
    ended: float | None = None
    done_steps: int = 0
    history: list[TaskStatus] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def _move(self, status: TaskStatus) -> None:
        if self.finished:
            raise ValueError(f"task {self.id} already {self.status}")
        self.status = status
        self.history.append(status)

    def start(self, now: float, message: str = "") -> None:
        self._move("working")
        self.started = now
        self.message = message or self.message

    def step(
        self,
        now: float,
        *,
        progress: float | None = None,
        intermediate: JsonValue = None,
        message: str | None = None,
    ) -> None:
        """Intermediate result of a working task (e.g. the engine accepted, now waiting)."""
        if self.status != "working":
            self.start(now)
        if progress is not None:
            self.progress = min(1.0, max(0.0, progress))
        if intermediate is not None:
            self.intermediate = intermediate
        if message is not None:
            self.message = message
        self.history.append("working")

    def finish(self, now: float, final: JsonValue = None, message: str = "") -> None:
        if self.started is None:
            self.started = now
        self._move("finished")
        self.ended = now
        self.final = final
        self.progress = 1.0
        self.done_steps = self.total
        self.message = message or self.message

    def fail(self, now: float, message: str) -> None:
        if self.started is None:
            self.started = now
        self._move("exception")
        self.ended = now
        self.message = message

    def interrupt(self, now: float, message: str = "interrupted") -> None:
        if self.finished:
            return
        if self.started is None:
            self.started = now
        self._move("interrupted")
        self.ended = now
        self.message = message

    def elapsed(self, now: float) -> dict[str, float | None]:
        started = self.started
        ended = self.ended
        pending = (started if started is not None else now) - self.created
        executing = 0.0 if started is None else (ended if ended is not None else now) - started
        total = (ended if ended is not None else now) - self.created
        return {
            "created": self.created,
            "started": started,
            "ended": ended,
            "pending": pending,
            "executing": executing,
            "total": total,
        }

    def frame(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "task",
            "action": self.action,
            "status": self.status,
            "total": self.total,
            "pending": self.total - self.done_steps,
            "message": self.message,
            "data": {
                "progress": self.progress,
                "intermediate": self.intermediate,
                "final": self.final,
                "elapsed": self.elapsed(now),
            },
        }
