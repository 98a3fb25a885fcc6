"""The example unit's messages, frame for frame, are those of the engine before the running-cost
work of issue 15 item 3 (recorded at fb8a1e4), with one deliberate change since: a run's first
sample, with every tag, is taken in its start scan (2026-12-06: one frame more; every other
sample at the same time as before; engine/reporting.py `_on_run_started`).

Those changes make the scan do less when nothing changed and take cheaper paths to the wire;
none may change what is reported or stored. So the chromatography example runs its method to the
end on a fake clock, with a link that registers late (a full sample), a watching client for a
while (live updates every scan, then a snapshot) and nobody watching the rest of the time, and
every message it emits is encoded as the outbox would store it. The digest covers every byte of
every frame, in order, except the order of MethodState's line-id lists, which come from sets
(string hashing differs from process to process) and are compared sorted.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.engine import Engine
from engine.uod import load_uod
from protocol.models import ControlAction

EXAMPLES = Path(__file__).resolve().parents[2] / "uod_examples"
WALL_START = 1_790_000_000.0
SCANS = 3_600

# The count of frames and the sha256 of all of them, in order: recorded at fb8a1e4, and again
# for the run's first sample at its start (fb8a1e4's were 1,025 frames, dafcc2a7...0fd23d46).
EXPECTED_FRAMES = 1_026
EXPECTED_DIGEST = "c25c8e9f6614e227a0110d34bb73516d9420b62339b285450e89ae8c429d0fa1"


class RecordingLink:
    """A sink with the link's two status flags; stores each message as the outbox encodes it."""

    def __init__(self) -> None:
        self.connected = False
        self.live_watched = False
        self.frames: list[str] = []

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        frame = kind(seq=len(self.frames) + 1, **fields).model_dump_json()
        self.frames.append(_canonical(frame) if '"type":"MethodState"' in frame else frame)


def _canonical(frame: str) -> str:
    data = json.loads(frame)
    for key in ("started", "completed", "failed"):
        data[key] = sorted(data[key])
    return json.dumps(data, separators=(",", ":"))


def _watched(scan: int) -> bool:
    return 400 <= scan < 700 or 2_000 <= scan < 2_050


def run_example(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ids = (f"run{n:04d}" for n in itertools.count(1))
    monkeypatch.setattr("engine.engine.uuid.uuid4", lambda: type("U", (), {"hex": next(ids)}))
    uod = load_uod(str(EXAMPLES / "chromatography.py"))
    clock = FakeClock(1_000.0, wall_start=WALL_START)
    link = RecordingLink()
    method = (EXAMPLES / "chromatography.pcode").read_text()
    engine = Engine(uod, clock=clock, method=method, sink=link, ureg=uod.unit_registry)
    asyncio.run(engine.start())
    engine.scan(clock.monotonic())
    engine.control(ControlAction.START, "tester")
    for scan in range(SCANS):
        link.connected = scan >= 25  # registers after two and a half seconds: a full sample
        link.live_watched = _watched(scan)
        clock.advance(uod.scan_interval)
        engine.scan(clock.monotonic())
    engine.final_report()
    return link.frames


def test_the_example_emits_the_same_frames_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = run_example(monkeypatch)
    digest = hashlib.sha256("\n".join(frames).encode()).hexdigest()
    assert (len(frames), digest) == (EXPECTED_FRAMES, EXPECTED_DIGEST)
