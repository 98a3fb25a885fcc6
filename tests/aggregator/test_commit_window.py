"""The group-commit policy (aggregator/commit_window.py), fed with times: when a batch closes
and what it holds, with no loop, thread or sleep."""

from __future__ import annotations

import math

from aggregator.commit_window import CommitWindow


def test_nothing_waiting_means_no_deadline() -> None:
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=100)
    assert batches.wait(0.0) == math.inf
    assert len(batches) == 0


def test_a_batch_closes_one_window_after_its_oldest_submission() -> None:
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=100)
    assert not batches.add("a1", 1, now=10.0)
    assert batches.wait(10.0) == 0.25
    batches.add("b1", 1, now=10.1)
    assert math.isclose(batches.wait(10.1), 0.15), "counted from the oldest, not the newest"
    assert batches.wait(10.3) == 0.0, "past the window: commit now"
    assert batches.take() == ["a1", "b1"]
    assert len(batches) == 0


def test_a_full_batch_closes_at_once_and_is_cut_at_max_ops() -> None:
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=4)
    assert not batches.add("a", 2, now=0.0)
    assert batches.add("b", 2, now=0.0), "4 operations: full"
    batches.add("c", 3, now=0.0)
    assert batches.wait(0.0) == 0.0
    assert batches.take() == ["a", "b"], "at most max_ops operations"
    assert batches.take() == ["c"]


def test_one_submission_larger_than_max_ops_still_goes_alone() -> None:
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=4)
    batches.add("huge", 9, now=0.0)
    batches.add("next", 1, now=0.0)
    assert batches.take() == ["huge"]
    assert batches.take() == ["next"]


def test_a_submission_after_a_silence_does_not_wait_for_company() -> None:
    """One engine sending a sample a second: nothing would join its frame."""
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=100)
    batches.add("first", 1, now=0.0)
    assert batches.wait(0.0) == 0.25, "the first submission ever waits: no silence seen"
    batches.take()
    batches.add("lone", 1, now=1.0)  # 1 s > 2 windows after the last one
    assert batches.wait(1.0) == 0.0
    batches.take()
    batches.add("close", 1, now=1.3)  # 0.3 s < 2 windows after the last one
    assert batches.wait(1.3) == 0.25, "close to the last submission: it waits again"


def test_what_waited_behind_a_lone_batch_is_not_lone() -> None:
    batches: CommitWindow[str] = CommitWindow(window=0.25, max_ops=3)
    batches.add("x", 1, now=0.0)
    batches.take()
    batches.add("lone", 2, now=5.0)
    batches.add("behind", 2, now=5.01)
    assert batches.wait(5.01) == 0.0, "full, and lone"
    assert batches.take() == ["lone"]
    assert math.isclose(batches.wait(5.02), 0.24), "its own window, from its submission"


def test_a_batch_older_than_its_window_when_the_last_commit_ends_goes_at_once() -> None:
    """A commit that outlasts the window: the next batch does not wait a window more."""
    batches: CommitWindow[int] = CommitWindow(window=0.01, max_ops=100)
    batches.add(1, 1, now=0.0)
    assert batches.take() == [1]
    for seq, now in ((2, 0.005), (3, 0.025), (4, 0.045)):
        batches.add(seq, 1, now=now)
    assert batches.wait(0.5) == 0.0
    assert batches.take() == [2, 3, 4]
