"""View roles: a unit declared with `require_roles(control="operator", view="viewer")` is seen by
viewers everywhere (HTTP unit and run calls, /ws) but controlled only by its control roles; a
unit without view roles stays invisible to users who lack its roles."""

from __future__ import annotations

from urllib.parse import quote

import protocol as p
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.api.test_http import fill_run
from tests.live.conftest import Frame, WsClient

T0 = 1_700_000_000.0


def uod(name: str, control: list[str], view: list[str]) -> p.UodDescription:
    return p.UodDescription(
        name=name,
        required_roles=control,
        view_roles=view,
        tags=[
            p.TagDescription(name="FT01", unit="L/h", kind="reading"),
            p.TagDescription(name="Inlet", kind="choice"),
        ],
    )


def unit(engine: FakeEngine, tail: str = "") -> str:
    return f"/api/units/{quote(engine.engine_id, safe='')}{tail}"


async def unit_ids(api: Api, role: str) -> list[str]:
    status, units = await api.call("GET", "/api/units", role)
    assert status == 200
    return [u["id"] for u in units]


async def run_ids(api: Api, role: str) -> list[str]:
    status, page = await api.call("GET", "/api/runs", role)
    assert status == 200
    return [r["id"] for r in page["items"]]


async def ws_snapshot(api: Api, role: str, topic: str) -> Frame:
    client = await WsClient(api, role).connect()
    try:
        await client.send({"action": "subscribe", "topic": topic, "id": "s"})
        return await client.wait(
            lambda f: f.get("topic") == topic or (f.get("type") == "error" and f.get("id") == "s"),
            what=f"answer to subscribing {topic}",
        )
    finally:
        await client.close()


async def test_a_viewer_watches_but_cannot_control(api: Api) -> None:
    watched = await api.engine(uod=uod("Watched", ["operator"], ["viewer"]))
    run_id = "watched-" + watched.engine_id.split("/")[0]
    try:
        await fill_run(watched, run_id, T0, 4)
        assert watched.engine_id in await unit_ids(api, "viewer")
        status, detail = await api.call("GET", unit(watched), "viewer")
        assert status == 200
        assert (detail["required_roles"], detail["view_roles"]) == (["operator"], ["viewer"])
        assert (await api.call("GET", unit(watched, "/plot"), "viewer"))[0] == 200
        assert run_id in await run_ids(api, "viewer")
        for tail in ("", "/plot", "/csv"):
            status, body = await api.call("GET", f"/api/runs/{run_id}{tail}", "viewer")
            assert status == 200, (tail, body)
        snapshot = await ws_snapshot(api, "viewer", f"unit/{watched.engine_id}/tags")
        assert snapshot.get("kind") == "snapshot"
        assert {t["name"] for t in snapshot["data"]} >= {"FT01"}
        units = await ws_snapshot(api, "viewer", "units")
        assert watched.engine_id in [u["id"] for u in units["data"]]

        for path, body in [
            ("/control", {"action": "Stop"}),
            ("/inject", {"pcode": "Mark: x"}),
            ("/runlog/r1/cancel", None),
        ]:
            status, refusal = await api.call("POST", unit(watched, path), "viewer", json=body)
            assert status == 403 and "operator" in refusal["error"], (path, refusal)
        status, _ = await api.call(
            "POST", unit(watched, "/control"), "operator", json={"action": "Stop"}
        )
        assert status == 200
        assert [r.command for r in watched.requests] == ["Stop"]
    finally:
        await watched.aclose()


async def test_without_view_roles_the_unit_stays_invisible(api: Api) -> None:
    hidden = await api.engine(uod=uod("Hidden", ["operator"], []))
    run_id = "hidden-" + hidden.engine_id.split("/")[0]
    try:
        await fill_run(hidden, run_id, T0, 3)
        assert hidden.engine_id not in await unit_ids(api, "viewer")
        assert run_id not in await run_ids(api, "viewer")
        assert run_id in await run_ids(api, "operator")
        for path in (unit(hidden), unit(hidden, "/plot"), f"/api/runs/{run_id}/csv"):
            assert (await api.call("GET", path, "viewer"))[0] == 403, path
        refused = await ws_snapshot(api, "viewer", f"unit/{hidden.engine_id}/tags")
        assert refused.get("type") == "error"
    finally:
        await hidden.aclose()


async def test_control_takes_a_control_role(api: Api) -> None:
    """An operator who may only watch an admin-controlled unit sees it and is refused control."""
    guarded = await api.engine(uod=uod("Guarded", ["admin"], ["operator"]))
    try:
        assert guarded.engine_id not in await unit_ids(api, "viewer")
        assert guarded.engine_id in await unit_ids(api, "operator")
        status, refusal = await api.call(
            "POST", unit(guarded, "/control"), "operator", json={"action": "Start"}
        )
        assert status == 403
        assert refusal["error"] == (
            f"unit {guarded.engine_id!r} may be controlled only with one of the roles admin"
        )
        status, _ = await api.call(
            "PUT",
            unit(guarded, "/method"),
            "operator",
            json={"text": "Mark: a", "expected_version": 0},
        )
        assert status == 403
        assert guarded.requests == []
        status, _ = await api.call(
            "POST", unit(guarded, "/control"), "admin", json={"action": "Stop"}
        )
        assert status == 200 and [r.command for r in guarded.requests] == ["Stop"]
    finally:
        await guarded.aclose()


async def test_runs_of_a_gated_unit_stay_hidden_while_its_engine_is_away(api: Api) -> None:
    """After an aggregator restart an engine may not have reconnected yet: the required roles of
    its stored UOD still hide its runs from the run list."""
    hidden = await api.engine(uod=uod("Away", ["operator"], []))
    run_id = "away-" + hidden.engine_id.split("/")[0]
    try:
        await fill_run(hidden, run_id, T0, 2)
    finally:
        await hidden.aclose()
    api.agg.ctx.live.engines.pop(hidden.engine_id, None)  # as right after a restart
    assert run_id not in await run_ids(api, "viewer")
    assert run_id in await run_ids(api, "operator")
