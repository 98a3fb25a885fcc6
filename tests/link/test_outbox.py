"""The durable outbox: numbering, commit, ack, restart and a killed process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.link.outbox import Outbox
from protocol.messages import Heartbeat, RunStarted, TagsUpdated
from tests.link.helpers import sample_fields


def values(outbox: Outbox, after: int = 0) -> list[int]:
    frames = outbox.read(after, 1_000_000)
    return [json.loads(f.frame)["tags"][0]["value"] for f in frames]


def test_seq_assigned_on_enqueue_and_readable_after_flush(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    seqs = [outbox.enqueue(TagsUpdated, sample_fields(n)) for n in range(1, 4)]
    assert seqs == [1, 2, 3]
    assert outbox.read(0, 10) == [], "uncommitted messages must not be sent"
    assert outbox.committed_seq == 0
    assert outbox.flush() == 3
    frames = outbox.read(0, 10)
    assert [f.seq for f in frames] == [1, 2, 3]
    assert [json.loads(f.frame)["seq"] for f in frames] == [1, 2, 3]
    assert {f.kind for f in frames} == {"TagsUpdated"}
    assert outbox.read(1, 1) == frames[1:2]
    assert outbox.read(0, 10, upto=2) == frames[:2]


def test_ack_is_cumulative_and_counter_survives_empty_outbox_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(1, 6):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    outbox.flush()
    assert outbox.ack(3) == 3
    assert outbox.first_seq() == 4
    assert outbox.ack(2) == 3, "cumulative: an older ack changes nothing"
    assert outbox.ack(5) == 5
    assert outbox.pending == 0
    assert outbox.first_seq() is None
    outbox.close()

    reopened = Outbox(path)
    assert reopened.committed_seq == 5
    assert reopened.enqueue(TagsUpdated, sample_fields(6)) == 6, "seq must never be reused"
    reopened.flush()
    reopened.close()


def test_unflushed_messages_are_committed_by_close(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.enqueue(TagsUpdated, sample_fields(1))
    outbox.close()
    reopened = Outbox(path)
    assert values(reopened) == [1]
    reopened.close()


def test_enqueue_validates_and_consumes_no_seq_on_error(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    with pytest.raises(ValidationError):
        outbox.enqueue(TagsUpdated, {"time": 1.0, "tags": []})
    with pytest.raises(TypeError, match="not a stored message"):
        outbox.enqueue(Heartbeat, {"time": 1.0})
    with pytest.raises(TypeError, match="assigned by the outbox"):
        outbox.enqueue(TagsUpdated, {**sample_fields(1), "seq": 9})
    assert (
        outbox.enqueue(
            RunStarted, {"time": 1.0, "run_id": "r", "started": 1.0, "method_version": 0}
        )
        == 1
    )
    outbox.close()


def test_auto_commit_bounds_uncommitted_work(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_uncommitted=3)
    for n in range(1, 5):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    assert outbox.committed_seq == 3
    outbox.close()


def test_rebase_renumbers_in_order_above_the_aggregator(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(1, 4):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    outbox.flush()
    assert outbox.rebase(0) == 0, "nothing to do when every held message is above"
    assert outbox.rebase(100) == 100
    frames = outbox.read(0, 10)
    assert [f.seq for f in frames] == [101, 102, 103]
    assert [json.loads(f.frame)["seq"] for f in frames] == [101, 102, 103]
    assert values(outbox) == [1, 2, 3]
    assert outbox.rebase(100) == 0
    assert outbox.enqueue(TagsUpdated, sample_fields(4)) == 104
    assert outbox.ack(104) == 103, "an ack never covers what is not committed (never sent)"
    assert outbox.first_seq() is None
    outbox.flush()
    assert outbox.ack(104) == 104
    assert outbox.first_seq() is None
    assert outbox.rebase(200) == 96
    outbox.close()
    assert Outbox(path).enqueue(TagsUpdated, sample_fields(5)) == 201


def test_rebase_moves_every_held_message_above_including_buffered_ones(tmp_path: Path) -> None:
    """The link decides to rebase when the aggregator is ahead of what was committed; by the
    time the rebase runs more may be committed or buffered. Any held message numbered at or
    below what the aggregator stored would be taken for one it already has and dropped."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for n in range(1, 4):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    outbox.flush()
    outbox.enqueue(TagsUpdated, sample_fields(4))  # buffered, not committed
    assert outbox.rebase(3) == 3
    assert outbox.committed_seq == outbox.assigned_seq == 7
    frames = outbox.read(0, 10)
    assert [f.seq for f in frames] == [4, 5, 6, 7]
    assert [json.loads(f.frame)["seq"] for f in frames] == [4, 5, 6, 7]
    assert values(outbox) == [1, 2, 3, 4]
    outbox.close()


def test_a_failed_rebase_rolls_back_and_later_flushes_work(tmp_path: Path) -> None:
    """A rebase that fails half-way (here a damaged row) must not leave its transaction open:
    every later flush would fail and the engine would stop storing data."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(1, 4):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    outbox.flush()
    with sqlite3.connect(path) as other:
        other.execute("UPDATE outbox SET frame = 'not a frame' WHERE seq = 2")
    with pytest.raises(ValidationError):
        outbox.rebase(100)
    assert outbox.assigned_seq == 3 and outbox.committed_seq == 3
    assert [f.seq for f in outbox.read(0, 10)] == [1, 2, 3], "the renumbering was rolled back"
    assert outbox.enqueue(TagsUpdated, sample_fields(4)) == 4
    assert outbox.flush() == 4
    assert [f.seq for f in outbox.read(0, 10)] == [1, 2, 3, 4]
    outbox.close()


def test_synchronous_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NORMAL or FULL"):
        Outbox(tmp_path / "o.sqlite3", synchronous="OFF")  # type: ignore[arg-type]


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from engine.link.outbox import Outbox
    from protocol.messages import TagsUpdated
    from tests.link.helpers import sample_fields

    outbox = Outbox(Path(sys.argv[1]))
    n = outbox.committed_seq
    target = n + int(sys.argv[2])
    while n < target:
        n += 1
        outbox.enqueue(TagsUpdated, sample_fields(n))
        if n % 7 == 0:
            outbox.flush()
    outbox.flush()
    print(f"flushed {n}", flush=True)
    while True:  # keep writing unflushed messages until killed
        n += 1
        outbox.enqueue(TagsUpdated, sample_fields(n))
    """
)


def run_writer_and_kill(path: Path, count: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("flushed "), line
        return int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_flushed_messages_survive_sigkill_and_seq_continues(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    flushed = run_writer_and_kill(path, 200)
    outbox = Outbox(path)
    assert outbox.committed_seq >= flushed
    got = values(outbox)
    assert got[:flushed] == list(range(1, flushed + 1))
    assert got == list(range(1, len(got) + 1)), "whatever survived is contiguous"
    survived = outbox.committed_seq
    outbox.ack(survived)  # empty it: the counter must still not go back
    outbox.close()

    flushed_again = run_writer_and_kill(path, 50)
    assert flushed_again == survived + 50
    outbox = Outbox(path)
    frames = outbox.read(0, 1_000_000)
    assert frames[0].seq == survived + 1, "no seq reused after a kill and an emptied outbox"
    assert [f.seq for f in frames] == list(range(survived + 1, survived + 1 + len(frames)))
    outbox.close()


def test_ack_deletes_at_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(1, 6):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    assert outbox.pending == 5, "buffered messages count as pending"
    outbox.flush()
    outbox.ack(3)
    assert outbox.pending == 2
    assert values(outbox) == [4, 5], "acknowledged rows are never read again"
    outbox.flush()
    outbox.close()
    reopened = Outbox(path)
    assert values(reopened) == [4, 5]
    reopened.close()


def test_commits_in_another_thread_keep_every_message_in_order(tmp_path: Path) -> None:
    """The link commits in a worker thread while the scan keeps enqueueing."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    done = threading.Event()

    def committer() -> None:
        while not done.is_set():
            outbox.flush()

    thread = threading.Thread(target=committer)
    thread.start()
    try:
        for n in range(1, 2001):
            assert outbox.enqueue(TagsUpdated, sample_fields(n)) == n
    finally:
        done.set()
        thread.join(10)
    outbox.flush()
    assert values(outbox) == list(range(1, 2001))
    assert [f.seq for f in outbox.read(0, 10_000)] == list(range(1, 2001))
    outbox.close()


def test_rebase_while_the_scan_enqueues_keeps_seqs_increasing_and_gap_free(
    tmp_path: Path,
) -> None:
    """The scan thread enqueues while the link's side flushes and rebases, in many rounds.

    Whatever the interleaving, the stored messages are numbered in enqueue order without gaps,
    and the seq inside each frame is the row's seq: a message enqueued while a rebase commits
    must not keep a number from before the renumbering.
    """
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    rounds, per_round = 300, 4
    go = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []

    def scan() -> None:
        n = 0
        try:
            for _ in range(rounds):
                go.wait()
                for _ in range(per_round):
                    n += 1
                    outbox.enqueue(TagsUpdated, sample_fields(n))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            go.abort()

    thread = threading.Thread(target=scan)
    thread.start()
    try:
        for r in range(rounds):
            go.wait()
            if r % 3 == 2:
                outbox.flush()
            else:
                outbox.rebase(outbox.assigned_seq + 1 + r % 5)
    finally:
        thread.join(10)
    assert not failures
    outbox.flush()
    frames = outbox.read(0, 1_000_000)
    seqs = [f.seq for f in frames]
    total = rounds * per_round
    assert values(outbox) == list(range(1, total + 1)), "stored in enqueue order"
    assert seqs == list(range(seqs[0], seqs[0] + total)), "strictly increasing, no gaps"
    assert [json.loads(f.frame)["seq"] for f in frames] == seqs
    assert outbox.committed_seq == outbox.assigned_seq == seqs[-1]
    outbox.close()
