"""`Outbox.read_recent`: the latest commits' frames from memory answer exactly as `read` would,
or not at all (issue 15 item 3: the link sends what was just committed without a trip to its
read thread)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.link import outbox as outbox_module
from engine.link.outbox import Outbox
from protocol.messages import TagsUpdated
from tests.link.helpers import sample_fields


def _spans(outbox: Outbox, rng: random.Random) -> list[tuple[int, int, int | None]]:
    top = outbox.assigned_seq + 2
    spans: list[tuple[int, int, int | None]] = [(outbox.committed_seq - 1, 100, None)]
    for _ in range(20):
        upto = rng.choice([None, rng.randint(0, top)])
        spans.append((rng.randint(0, top), rng.choice([0, 1, 2, 5, 100, -1]), upto))
    return spans


def test_read_recent_is_read_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "RECENT", 7)  # small, so that trimming is exercised
    rng = random.Random(15)
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    answered = 0
    for step in range(400):
        action = rng.random()
        if action < 0.5:
            outbox.enqueue(TagsUpdated, sample_fields(step))
        elif action < 0.75:
            outbox.flush()
        elif action < 0.9:
            outbox.ack(rng.randint(0, outbox.committed_seq))
        else:
            outbox.rebase(outbox.assigned_seq + rng.randint(0, 3))
        for after, limit, upto in _spans(outbox, rng):
            recent = outbox.read_recent(after, limit, upto)
            if recent is not None:
                answered += 1
                assert recent == outbox.read(after, limit, upto), (after, limit, upto)
    assert answered > 1_000  # the point: most live reads never reach SQLite


def test_only_committed_frames_are_answered(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.enqueue(TagsUpdated, sample_fields(1))
    assert outbox.read_recent(0, 10) == []  # enqueued, not committed: nothing to send
    outbox.flush()
    outbox.enqueue(TagsUpdated, sample_fields(2))
    assert [f.seq for f in outbox.read_recent(0, 10) or []] == [1]
    outbox.flush()
    assert [f.seq for f in outbox.read_recent(1, 10) or []] == [2]
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3")
    assert reopened.read_recent(0, 10) is None  # after a restart only SQLite knows
    assert [f.seq for f in reopened.read(0, 10)] == [1, 2]
