"""Issue 13 item 9: a message that fails to apply is acknowledged only because it is kept whole
in quarantine; admins list it, read it and replay it after a fix, and every replay is audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

import protocol as p
from aggregator.store.ingest import Ingest
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine

BUG = 666.0


class Bug:
    """A bug in the ingest handlers met by messages carrying BUG (or any ControlState while
    `control` is set); `fixed` is the deploy of the fix."""

    def __init__(self) -> None:
        self.fixed = False
        self.control = False


@pytest.fixture
def bug(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bug]:
    state = Bug()
    real = Ingest._apply

    def apply(self: Ingest, batch: Any, op: Any, msg: Any) -> None:
        real(self, batch, op, msg)  # rows written, then rolled back with the savepoint
        if state.fixed:
            return
        if isinstance(msg, p.TagsUpdated) and any(t.value == BUG for t in msg.tags):
            raise RuntimeError("the handler trips over 666")
        if isinstance(msg, p.ControlState) and state.control:
            raise RuntimeError("the handler trips over this state")

    monkeypatch.setattr(Ingest, "_apply", apply)
    yield state


def _errors_path(engine: FakeEngine) -> str:
    return f"/api/units/{quote(engine.engine_id, safe='')}/errors"


def _ft01(api: Api, run_id: str) -> list[object]:
    storage = api.agg.ctx.storage
    run = storage.run_by_id(run_id)
    assert run is not None
    with storage.engine.connect() as conn:
        tag_ids = {name: tag_id for tag_id, name, _ in storage.run_tags(conn, run.pk)}
    samples, _ = storage.read_samples(run.pk, tag_ids["FT01"], 0, 2e10)
    return [v for _, v in samples]


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_failing_message_is_quarantined_then_replayed(
    api: Api, engine: FakeEngine, bug: Bug
) -> None:
    rid = "run-" + engine.engine_id[-8:]
    await engine.run_started(rid, time.time())
    await engine.tags(rid, 1000.0, FT01=1.0)
    seq = await engine.tags(rid, 1001.0, FT01=BUG)  # acked: kept whole in quarantine
    await engine.tags(rid, 1002.0, FT01=3.0)  # the stream goes on
    assert _ft01(api, rid) == [1.0, 3.0]

    status, page = await api.call("GET", "/api/quarantine", "admin")
    assert status == 200
    assert page["total"] == 1 and page["next"] is None
    (item,) = page["items"]
    assert (item["unit_id"], item["seq"], item["type"]) == (engine.engine_id, seq, "TagsUpdated")
    assert "the handler trips over 666" in item["error"] and item["attempts"] == 0
    status, whole = await api.call("GET", f"/api/quarantine/{item['id']}", "admin")
    assert status == 200 and whole["message"]["tags"][0]["value"] == BUG
    assert whole["message"]["seq"] == seq and whole["message"]["run_id"] == rid

    status, log = await api.call("GET", _errors_path(engine), "viewer")
    assert status == 200
    lines = [e["message"] for e in log]
    assert any(f"quarantine #{item['id']}" in m and "nothing is lost" in m for m in lines)

    for role in ("viewer", "operator"):
        assert (await api.call("GET", "/api/quarantine", role))[0] == 403
        assert (await api.call("POST", f"/api/quarantine/{item['id']}/replay", role))[0] == 403

    bug.fixed = True
    status, done = await api.call("POST", f"/api/quarantine/{item['id']}/replay", "admin")
    assert status == 200, done
    assert done == {  # nothing lost: the sample is stored, in time order
        "id": item["id"],
        "unit_id": engine.engine_id,
        "seq": seq,
        "type": "TagsUpdated",
        "outcome": "applied",
    }
    assert _ft01(api, rid) == [1.0, BUG, 3.0]
    assert (await api.call("GET", "/api/quarantine", "admin"))[1]["total"] == 0
    assert (await api.call("POST", f"/api/quarantine/{item['id']}/replay", "admin"))[0] == 404
    lines = [e["message"] for e in (await api.call("GET", _errors_path(engine), "viewer"))[1]]
    assert any(f"quarantine #{item['id']} replayed by {api.names['admin']}" in m for m in lines)

    status, audit = await api.call("GET", "/api/audit?limit=20", "admin")
    replays = [e for e in audit["items"] if e["action"] == "quarantine replay"]
    assert [(e["user"], e["unit_id"], e["new"]["result"]) for e in replays[:1]] == [
        (api.names["admin"], engine.engine_id, "applied")
    ]  # newest first; the viewer's and operator's refused attempts are audited too
    assert {e["user"] for e in replays[1:]} == {api.names["viewer"], api.names["operator"]}
    # the engine's resend of that seq is the same message: nothing is stored twice
    await engine.send(
        p.TagsUpdated(
            seq=seq,
            time=1001.0,
            run_id=rid,
            tags=[p.TagValue(name="FT01", value=BUG, tick=1001.0)],
        )
    )
    await engine.tags(rid, 1003.0, FT01=4.0)
    assert _ft01(api, rid) == [1.0, BUG, 3.0, 4.0]


async def test_a_replay_that_fails_again_stays_and_is_audited(
    api: Api, engine: FakeEngine, bug: Bug
) -> None:
    rid = "run-" + engine.engine_id[-8:]
    await engine.run_started(rid, time.time())
    await engine.tags(rid, 1001.0, FT01=BUG)
    (item,) = (await api.call("GET", "/api/quarantine", "admin"))[1]["items"]
    status, body = await api.call("POST", f"/api/quarantine/{item['id']}/replay", "admin")
    assert status == 409
    assert "failed again, it stays" in body["error"] and "trips over 666" in body["error"]
    (after,) = (await api.call("GET", "/api/quarantine", "admin"))[1]["items"]
    assert after["id"] == item["id"] and after["attempts"] == 1
    audit = (await api.call("GET", "/api/audit?limit=20", "admin"))[1]
    replays = [e for e in audit["items"] if e["action"] == "quarantine replay"]
    assert len(replays) == 1 and "failed again" in replays[0]["new"]["result"]
    assert replays[0]["new"]["id"] == item["id"]


async def test_a_superseded_state_is_not_rolled_back_by_its_replay(
    api: Api, engine: FakeEngine, bug: Bug
) -> None:
    bug.control = True
    await engine.control_state(p.SystemState.PAUSED)  # fails: quarantined
    bug.control = False
    bug.fixed = True
    await engine.control_state(p.SystemState.STOPPED)
    live = api.agg.ctx.live.engines[engine.engine_id]
    await until(lambda: live.control.get("state") == "Stopped", 5, "the newer state")
    (item,) = (await api.call("GET", "/api/quarantine", "admin"))[1]["items"]
    assert item["type"] == "ControlState"
    status, done = await api.call("POST", f"/api/quarantine/{item['id']}/replay", "admin")
    assert status == 200 and done["outcome"] == "superseded"
    stored = {row.id: row for row in api.agg.ctx.storage.list_engines()}[engine.engine_id]
    assert '"Stopped"' in stored.control_json
    assert (await api.call("GET", "/api/quarantine", "admin"))[1]["total"] == 0


async def test_quarantine_pages_filters_and_bad_ids(api: Api, bug: Bug) -> None:
    first, second = await api.engine(), await api.engine()
    try:
        rid = "run-" + first.engine_id[-8:]
        await first.run_started(rid, time.time())
        for t in (1.0, 2.0, 3.0):
            await first.tags(rid, 1000.0 + t, FT01=BUG)
        await second.tags(None, 1000.0, FT01=BUG, sample=False)
        await second.control_state(p.SystemState.STOPPED)
        assert (await api.call("GET", "/api/quarantine", "admin"))[1]["total"] == 4
        unit = quote(first.engine_id, safe="")
        status, page = await api.call("GET", f"/api/quarantine?unit={unit}&limit=2", "admin")
        assert status == 200 and page["total"] == 3
        ids = [i["id"] for i in page["items"]]
        assert len(ids) == 2 and ids == sorted(ids, reverse=True) and page["next"] == ids[-1]
        rest = (await api.call("GET", f"/api/quarantine?unit={unit}&cursor={ids[-1]}", "admin"))[1]
        assert [i["id"] for i in rest["items"]] == [ids[-1] - 1] and rest["next"] is None
        assert (await api.call("GET", "/api/quarantine?unit=nobody", "admin"))[1]["total"] == 0
        for bad in ("0", "abc", "99999999999999999999", str(ids[0] + 1000)):
            status, body = await api.call("POST", f"/api/quarantine/{bad}/replay", "admin")
            assert status == 404 and "no quarantined message" in body["error"]
            assert (await api.call("GET", f"/api/quarantine/{bad}", "admin"))[0] == 404
        assert (await api.call("GET", "/api/quarantine?limit=0", "admin"))[0] == 400
    finally:
        await first.aclose()
        await second.aclose()
