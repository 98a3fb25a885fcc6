"""Issue 16 items 1-3 and 7: loading library versions onto a unit, a unit that runs approved
methods only (Start and live edits refused with the reason, audited), and run signatures."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from tests.aggregator.helpers import UOD, until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.api.regulated_helpers import (
    add_signers,
    approved_method,
    audit_entries,
    new_of,
    sign,
)

TEXT = "Base: min\nInlet: VA01\nWait: 1 min"
APPROVED_ONLY = UOD.model_copy(update={"require_approved_methods": True})


@pytest.fixture
def signers(api: Api, password_hash: str) -> Api:
    return add_signers(api, password_hash)


class Unit:
    """A fake engine that saves every SetMethod as the next version and reports it."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.version = 0
        engine.answer = self.answer

    def answer(self, request: Any) -> tuple[bool, str | None, Any]:
        if isinstance(request, p.SetMethod) and not request.dry_run:
            self.version += 1
            return True, None, {"version": self.version, "findings": []}
        return True, None, None

    async def holds(self, api: Api, text: str) -> None:
        """The engine's Method message for `text`, as a real engine sends after a save."""
        self.version += 1
        lines = [(f"l{i}", line) for i, line in enumerate(text.split("\n"))]
        await self.engine.method(self.version, lines)
        unit = quote(self.engine.engine_id, safe="")

        async def shown() -> bool:
            _, body = await api.call("GET", f"/api/units/{unit}/method", "viewer")
            return isinstance(body, dict) and body["text"] == text

        deadline = time.monotonic() + 5
        while not await shown():
            assert time.monotonic() < deadline, "the method never showed"


async def _start(api: Api, unit: str) -> tuple[int, Any]:
    return await api.call("POST", f"/api/units/{unit}/control", json={"action": "Start"})


async def test_approved_only_unit_refuses_start_and_edits(signers: Api) -> None:
    api = signers
    engine = await api.engine(uod=APPROVED_ONLY)
    try:
        unit = Unit(engine)
        uid = quote(engine.engine_id, safe="")
        status, body = await _start(api, uid)
        assert status == 409 and "not loaded from the method library" in body["error"], body

        _, draft = await api.call("POST", "/api/methods", json={"name": "Draft", "text": TEXT})
        status, loaded = await api.call(
            "POST",
            f"/api/units/{uid}/method/load",
            json={"method_id": draft["id"], "version": 1},
        )
        assert status == 200, loaded
        assert loaded["source"]["name"] == "Draft"
        await unit.holds(api, TEXT)
        status, body = await _start(api, uid)
        assert status == 409 and "Draft version 1 is draft, not approved" in body["error"]

        method = await approved_method(api, TEXT, name="Approved")
        await api.call(
            "POST", f"/api/units/{uid}/method/load", json={"method_id": method["id"], "version": 1}
        )
        await unit.holds(api, TEXT)
        status, source = await api.call("GET", f"/api/units/{uid}/method/source", "viewer")
        assert source["source"] == {
            "method_id": method["id"],
            "name": "Approved",
            "version": 1,
            "state": "approved",
            "loaded": source["source"]["loaded"],
            "loaded_by": api.names["operator"],
            "modified": False,
            "require_approved": True,
        }
        load_entry = [e for e in audit_entries(api, "method") if new_of(e)["source"]][-1]
        assert new_of(load_entry)["source"]["name"] == "Approved"

        edited = TEXT + "\nInlet: VA02"
        await unit.holds(api, edited)  # edited on the unit (e.g. from the engine's own UI)
        status, body = await _start(api, uid)
        assert status == 409 and "edited after Approved version 1" in body["error"]
        _, source = await api.call("GET", f"/api/units/{uid}/method/source", "viewer")
        assert source["source"]["modified"] is True

        await unit.holds(api, TEXT)  # the approved text again
        status, body = await _start(api, uid)
        assert status == 200, body

        await engine.run_started("run-a", time.time(), api.names["operator"])
        await engine.control_state(p.SystemState.RUNNING, "run-a")
        live = api.agg.ctx.live.engines[engine.engine_id]
        await until(lambda: live.run_id == "run-a", 5, "run open")
        status, body = await api.call(
            "PUT",
            f"/api/units/{uid}/method",
            json={"text": edited, "expected_version": unit.version},
        )
        assert status == 409 and "cannot be changed during a run" in body["error"]

        results = [new_of(e)["result"] for e in audit_entries(api, "control")]
        assert [r.split(":")[0] for r in results] == [
            "this unit runs approved methods only",
            "this unit runs approved methods only",
            "this unit runs approved methods only",
            "ok",
        ]
        assert "during a run" in new_of(audit_entries(api, "method")[-1])["result"]
    finally:
        await engine.aclose()


async def test_a_unit_without_the_flag_starts_anything(signers: Api, engine: FakeEngine) -> None:
    Unit(engine)
    status, body = await _start(signers, quote(engine.engine_id, safe=""))
    assert status == 200, body


async def test_runs_are_released_once_stopped_and_verify(signers: Api, engine: FakeEngine) -> None:
    api = signers
    started = time.time()
    await engine.run_started("run-r", started, api.names["operator"])
    storage = api.agg.ctx.storage
    await until(lambda: storage.run_by_id("run-r") is not None, 5, "run stored")
    got, body = await sign(api, "admin", "run", "run-r", "released")
    assert got == 409 and "still running" in body["error"]
    await engine.tags("run-r", started + 1, FT01=1.5, PT01=0.2)
    await engine.run_stopped("run-r", started + 2)
    await until(lambda: getattr(storage.run_by_id("run-r"), "stopped", None), 5, "run stopped")

    got, reviewed = await sign(api, "operator", "run", "run-r", "reviewed")
    assert got == 201, reviewed
    got, released = await sign(api, "admin", "run", "run-r", "released")
    assert got == 201, released
    got, body = await sign(api, "approver", "run", "run-r", "released")
    assert got == 409 and "already released" in body["error"]
    got, body = await sign(api, "admin", "run", "no-such-run", "released")
    assert got == 404
    got, body = await sign(api, "viewer", "run", "run-r", "reviewed")
    assert got == 403
    assert [new_of(e).get("status") for e in audit_entries(api, "signature")] == [
        409,
        None,
        None,
        409,
        404,
        403,
    ]

    _, listed = await api.call("GET", "/api/runs/run-r/signatures", "viewer")
    assert [(s["meaning"], s["full_name"], s["valid"]) for s in listed] == [
        ("reviewed", "Otto Operator", True),
        ("released", "Ada Admin", True),
    ]
    with storage.engine.begin() as conn:
        # the stopped run's samples may be compacted already: remove them wherever they are
        changed = conn.execute(sa.text("UPDATE sample_recent SET num = 9.5 WHERE num = 1.5"))
        if not changed.rowcount:
            conn.execute(sa.text("DELETE FROM sample_chunk"))
    _, check = await api.call("GET", f"/api/signatures/{released['id']}/verify", "viewer")
    assert check["valid"] is False and check["changed"] == ["samples"], check
