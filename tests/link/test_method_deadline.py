"""The engine link refuses a method edit past its deadline (issue 13 item 7): the deadline is in
the aggregator's clock, which the engine reaches through Registered.clock_offset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.link.machine import Execute, LinkMachine, LinkPolicy, Send
from engine.link.outbox import Outbox
from protocol import Registered, SetMethod
from tests.link.helpers import registration

T0 = 1_700_000_000.0
OFFSET = 3600.0  # the aggregator's clock is an hour ahead of the engine's


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[LinkMachine]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    link = LinkMachine(
        box, session_id="s", engine_version="0.1.0", policy=LinkPolicy(), random=lambda: 0.5
    )
    link.connected(T0, registration())
    registered = Registered(
        engine_id="testpc/Test Unit",
        session_id="s",
        last_seq=0,
        clock_offset=OFFSET,
        protocol_version="1.1",
    )
    link.frame_received(registered.model_dump_json(), T0)
    assert link.online
    yield link
    box.close()


def _edit(deadline: float | None, *, dry_run: bool = False) -> SetMethod:
    return SetMethod(
        id="e1", user="ann", text="Mark: a", expected_version=0, deadline=deadline, dry_run=dry_run
    )


def test_an_edit_within_its_deadline_is_executed(machine: LinkMachine) -> None:
    edit = _edit(T0 + OFFSET + 5.0)  # 5 s left in the aggregator's clock
    assert machine.frame_received(edit.model_dump_json(), T0 + 4.9) == [Execute(edit)]
    undated = _edit(None)
    assert machine.frame_received(undated.model_dump_json(), T0 + 1e6) == [Execute(undated)]


def test_an_edit_past_its_deadline_is_refused_unapplied(machine: LinkMachine) -> None:
    # T0 + 5.1 on the engine is past the deadline, although far before it in the engine's clock
    [action] = machine.frame_received(_edit(T0 + OFFSET + 5.0).model_dump_json(), T0 + 5.1)
    assert isinstance(action, Send)  # answered at once, not executed
    result = json.loads(action.frame)
    assert result["type"] == "CommandResult" and result["id"] == "e1"
    assert result["ok"] is False and result["data"] == {"expired": True}
    assert "not applied" in result["error"]


def test_a_dry_run_has_no_deadline_to_miss(machine: LinkMachine) -> None:
    check = _edit(T0 + OFFSET, dry_run=True)
    assert machine.frame_received(check.model_dump_json(), T0 + 60) == [Execute(check)]
