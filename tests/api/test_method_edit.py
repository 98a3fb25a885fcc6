"""Issue 13 item 7: a method edit is saved and reported saved, or not saved and reported not
saved. The engine's answer is bounded in size whatever the findings, and an edit the aggregator
stopped waiting for is refused by the engine (its deadline) or, when an engine answers late
anyway, recorded and shown. Over real sockets: the real engine link, or a raw-protocol engine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

import protocol as p
from aggregator.api.method_edit import LATE_RESULT
from aggregator.api.service import API_STATE_KEY
from engine.link import EngineLink, LinkPolicy
from engine.ports import MethodSaved
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine, wait_online
from tests.link.helpers import FakeControl

TIMEOUT = 1.0
MANY = 5000
LONG = "x" * 3000


def _finding(n: int) -> p.Finding:
    return p.Finding(
        severity="warning", code=f"W{n}", message=f"{n} {LONG}", line=1, suggestion=LONG
    )


class ChattyControl(FakeControl):
    """An engine whose analyzer finds MANY long findings in any text: unbounded, its answer
    would be about 30 MB, far over the frame limit."""

    def set_method(
        self, text: str, expected_version: int, line_ids: list[str | None] | None, user: str
    ) -> MethodSaved:
        saved = super().set_method(text, expected_version, line_ids, user)
        return MethodSaved(saved.version, [_finding(n) for n in range(MANY)])

    def analyze_method(self, text: str) -> list[p.Finding]:
        return [_finding(n) for n in range(MANY)]


class EngineThread:
    """The real engine link on its own event loop and thread, so that the test can stall the
    engine (as a busy or swapped-out engine process is) while the aggregator goes on."""

    def __init__(self, link: EngineLink) -> None:
        self.link = link
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.release = threading.Event()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.link.start(), self.loop).result(10)

    async def stall(self) -> None:
        """Block the engine's loop until `release` is set."""
        stalled = threading.Event()

        def block() -> None:
            stalled.set()
            self.release.wait(30)

        self.loop.call_soon_threadsafe(block)
        assert await asyncio.to_thread(stalled.wait, 10)

    def stop(self) -> None:
        self.release.set()
        asyncio.run_coroutine_threadsafe(self.link.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def fast(api: Api) -> Iterator[Api]:
    api.agg.app[API_STATE_KEY].command_timeout = TIMEOUT
    yield api


@contextlib.asynccontextmanager
async def _linked(api: Api, control: FakeControl, tmp_path: Path) -> AsyncIterator[EngineThread]:
    link = EngineLink(
        api.url, api.agg.token, tmp_path / "engine", control, policy=LinkPolicy(jitter=0)
    )
    engine = EngineThread(link)
    await asyncio.to_thread(engine.start)
    try:
        await wait_online(api.agg, control.reg.engine_id)
        yield engine
    finally:
        await asyncio.to_thread(engine.stop)


def _method_path(unit_id: str, tail: str = "") -> str:
    return f"/api/units/{quote(unit_id, safe='')}/method{tail}"


async def test_a_huge_analysis_is_bounded_and_counted(api: Api, tmp_path: Path) -> None:
    control = ChattyControl()
    async with _linked(api, control, tmp_path):
        unit = control.reg.engine_id
        body = {"text": "Mark: a", "expected_version": 0}
        status, saved = await api.call("PUT", _method_path(unit), json=body)
        assert status == 200, saved
        assert saved["version"] == 1
        assert len(saved["findings"]) == p.MAX_FINDINGS
        assert saved["findings_omitted"] == MANY - p.MAX_FINDINGS
        first = saved["findings"][0]
        assert first["code"] == "W0" and len(first["message"]) == p.FINDING_TEXT_LIMIT
        assert len(first["suggestion"]) == p.FINDING_TEXT_LIMIT
        status, checked = await api.call(
            "POST", _method_path(unit, "/check"), json={"text": "Mark: a"}
        )
        assert status == 200, checked
        assert len(checked["findings"]) == p.MAX_FINDINGS
        assert checked["findings_omitted"] == MANY - p.MAX_FINDINGS


async def test_an_old_engines_unbounded_findings_are_cut_and_counted(
    api: Api, engine: FakeEngine
) -> None:
    many = [p.Finding(severity="info", message=f"f{n}", line=1) for n in range(350)]
    engine.answer = lambda m: (
        True,
        None,
        {"version": 1, "findings": [f.model_dump() for f in many]},
    )
    body = {"text": "Mark: a", "expected_version": 0}
    status, saved = await api.call("PUT", _method_path(engine.engine_id), json=body)
    assert status == 200
    assert len(saved["findings"]) == p.MAX_FINDINGS and saved["findings_omitted"] == 150


async def test_an_edit_reaching_a_stalled_engine_after_its_deadline_is_not_applied(
    fast: Api, tmp_path: Path
) -> None:
    api = fast
    control = FakeControl()
    async with _linked(api, control, tmp_path) as engine:
        unit = control.reg.engine_id
        commands = api.agg.app[API_STATE_KEY].commands
        await engine.stall()
        body = {"text": "Mark: a", "expected_version": 0}
        started = time.monotonic()
        status, answer = await api.call("PUT", _method_path(unit), json=body)
        assert status == 503 and time.monotonic() - started >= TIMEOUT
        assert "the edit was not saved" in answer["error"]
        engine.release.set()  # the engine reads the edit now, past its deadline
        await until(lambda: commands.late_answers == 1, 10, "the engine's late answer")
        assert not [c for c in control.calls if c[0] == "set_method"]  # never applied
        assert control.method_version == 0
        # the unit is fine and the next edit is saved and reported saved
        status, saved = await api.call("PUT", _method_path(unit), json=body)
        assert status == 200 and saved["version"] == 1
        audit = (await api.call("GET", "/api/audit?limit=10", "admin"))[1]
        results = [e["new"]["result"] for e in audit["items"] if e["action"] == "method"]
        assert results[0] == "ok" and "not saved" in results[1]  # newest first


async def test_a_late_save_by_an_engine_ignoring_the_deadline_is_recorded_and_shown(
    fast: Api, engine: FakeEngine
) -> None:
    api = fast
    engine.answer = lambda m: None  # silent: the aggregator times out
    body = {"text": "Mark: late", "expected_version": 0}
    before = time.time()
    status, answer = await api.call("PUT", _method_path(engine.engine_id), json=body)
    assert status == 503 and "not saved" in answer["error"]
    (request,) = engine.requests
    assert isinstance(request, p.SetMethod) and request.deadline is not None
    assert before + TIMEOUT * 0.4 <= request.deadline <= time.time()
    # an engine older than 1.1 applies it anyway and says so, late
    await engine.send(
        p.CommandResult(id=request.id, seq=engine.seq, ok=True, data={"version": 1, "findings": []})
    )
    await engine.method(1, [("l1", "Mark: late")])
    commands = api.agg.app[API_STATE_KEY].commands
    await until(lambda: commands.late_answers == 1, 5, "the late answer recorded")

    audit = (await api.call("GET", "/api/audit?limit=10", "admin"))[1]
    late = [e for e in audit["items"] if e["new"].get("result") == LATE_RESULT]
    assert len(late) == 1 and late[0]["user"] == api.names["operator"]
    assert late[0]["new"]["version"] == 1 and late[0]["unit_id"] == engine.engine_id
    errors = (await api.call("GET", f"/api/units/{quote(engine.engine_id, safe='')}/errors"))[1]
    assert any("timed out" in e["message"] and "version 1" in e["message"] for e in errors)
    status, view = await api.call("GET", _method_path(engine.engine_id), "viewer")
    assert status == 200 and view["version"] == 1 and view["text"] == "Mark: late"
