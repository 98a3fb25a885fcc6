"""The HTTP API against a real aggregator and a scripted engine over loopback."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.api.service import API_STATE_KEY
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine


def unit_path(engine: FakeEngine, tail: str = "") -> str:
    return f"/api/units/{quote(engine.engine_id, safe='')}{tail}"


# --- auth ---------------------------------------------------------------------------------------


async def test_login_cookie_me_logout(api: Api) -> None:
    name = api.names["viewer"]
    async with api.http.post(
        f"{api.url}/api/auth/login", json={"username": name, "password": "correct horse"}
    ) as response:
        assert response.status == 200
        body = await response.json()
        cookie = response.cookies["setpoint_session"]
    assert body["user"] == {"name": name, "role": "viewer"}
    assert body["expires"] > time.time()
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    token = body["token"]
    async with api.http.get(f"{api.url}/api/auth/me", cookies={"setpoint_session": token}) as r:
        assert r.status == 200 and (await r.json()) == {"name": name, "role": "viewer"}
    headers = {"Authorization": f"Bearer {token}"}
    async with api.http.post(f"{api.url}/api/auth/logout", headers=headers) as r:
        assert r.status == 204
    async with api.http.get(f"{api.url}/api/auth/me", headers=headers) as r:
        assert r.status == 401
        assert (await r.json())["error"].startswith("not logged in")


async def test_wrong_password_and_expired_token(api: Api) -> None:
    async with api.http.post(
        f"{api.url}/api/auth/login", json={"username": api.names["viewer"], "password": "nope"}
    ) as r:
        assert r.status == 401
    token = await api.login(api.names["viewer"])
    with api.agg.ctx.storage.engine.begin() as conn:
        conn.execute(sa.text("UPDATE session_token SET expires = 0"))
    async with api.http.get(
        f"{api.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 401


async def test_roles(api: Api, engine: FakeEngine) -> None:
    status, body = await api.call(
        "POST", unit_path(engine, "/control"), "viewer", json={"action": "Start"}
    )
    assert status == 403 and "operator" in body["error"]
    assert not engine.requests
    assert (await api.call("GET", "/api/users", "operator"))[0] == 403
    status, users = await api.call("GET", "/api/users", "admin")
    assert status == 200 and {u["name"] for u in users} >= set(api.names.values())
    assert (await api.call("GET", "/api/units", None))[0] == 401


async def test_required_roles_hide_a_unit(api: Api) -> None:
    uod = p.UodDescription(
        name="Secret",
        required_roles=["operator"],
        tags=[p.TagDescription(name="X", kind="reading")],
    )
    secret = await api.engine(uod=uod)
    try:
        _, as_viewer = await api.call("GET", "/api/units", "viewer")
        _, as_operator = await api.call("GET", "/api/units", "operator")
        assert secret.engine_id not in [u["id"] for u in as_viewer]
        assert secret.engine_id in [u["id"] for u in as_operator]
        assert (await api.call("GET", unit_path(secret), "viewer"))[0] == 403
        status, detail = await api.call("GET", unit_path(secret), "operator")
        assert status == 200 and detail["required_roles"] == ["operator"]
    finally:
        await secret.aclose()


# --- units and engine requests ---------------------------------------------------------------------


async def test_unit_detail_with_live_tags(api: Api, engine: FakeEngine) -> None:
    await engine.control_state(p.SystemState.RUNNING, block="Equilibrate", run_time=12.5)
    await engine.tags(None, time.time(), sample=False, FT01=1.5)
    status, detail = await api.call("GET", unit_path(engine), "viewer")
    assert status == 200
    assert detail["online"] is True and detail["stale"] is False
    assert detail["state"] == "Running" and detail["block"] == "Equilibrate"
    assert detail["uod"]["name"] == "Chromatography"
    tags = {t["name"]: t for t in detail["tags"]}
    assert tags["FT01"]["value"] == 1.5 and tags["FT01"]["quality"] == "good"
    assert (await api.call("GET", "/api/units/nope", "viewer"))[0] == 404


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_control_reaches_the_engine_and_is_audited(api: Api, engine: FakeEngine) -> None:
    run_id = "run-" + engine.engine_id[-6:]
    await engine.run_started(run_id, time.time())
    await until(lambda: api.agg.ctx.live.engines[engine.engine_id].run_id == run_id, 5, "run")
    engine.answer = lambda m: (True, None, {"state": "Paused"})
    status, body = await api.call("POST", unit_path(engine, "/control"), json={"action": "Pause"})
    assert status == 200 and body == {"ok": True, "data": {"state": "Paused"}}
    (request,) = engine.requests
    assert isinstance(request, p.ControlCommand)
    assert request.command == "Pause" and request.user == api.names["operator"]

    engine.answer = lambda m: (False, "cannot Unhold while Paused", None)
    status, body = await api.call("POST", unit_path(engine, "/control"), json={"action": "Unhold"})
    assert status == 409 and "cannot Unhold" in body["error"]

    status, page = await api.call("GET", "/api/audit?limit=5", "admin")
    assert status == 200
    entries = [e for e in page["items"] if e["action"] == "control"]
    assert entries[0]["new"]["action"] == "Unhold" and "refused" in entries[0]["new"]["result"]
    assert entries[1]["new"] == {"action": "Pause", "result": "ok"}
    assert entries[1]["user"] == api.names["operator"] and entries[1]["run_id"] == run_id
    assert entries[0]["prev_hash"] == entries[1]["hash"]
    _, detail = await api.call("GET", f"/api/runs/{run_id}", "viewer")
    (contributor,) = detail["contributors"]
    assert contributor["user"] == api.names["operator"] and contributor["actions"] == 2
    assert api.agg.app[API_STATE_KEY].audit.verify().ok


async def test_offline_and_silent_engines_give_503(api: Api, engine: FakeEngine) -> None:
    engine.answer = lambda m: None
    api.agg.app[API_STATE_KEY].command_timeout = 0.3
    status, body = await api.call("POST", unit_path(engine, "/inject"), json={"pcode": "Mark: a"})
    assert status == 503 and "did not answer" in body["error"]
    await engine.close()
    await until(lambda: not api.agg.ctx.live.engines[engine.engine_id].online, 5, "offline")
    status, body = await api.call("POST", unit_path(engine, "/control"), json={"action": "Stop"})
    assert status == 503 and "offline" in body["error"]
    _, units = await api.call("GET", "/api/units", "viewer")
    (unit,) = [u for u in units if u["id"] == engine.engine_id]
    assert unit["online"] is False and unit["stale"] is True


async def test_inject_cancel_force(api: Api, engine: FakeEngine) -> None:
    assert (await api.call("POST", unit_path(engine, "/inject"), json={"pcode": "PU01: 20 %"}))[
        0
    ] == 200
    assert (await api.call("POST", unit_path(engine, "/runlog/L7/cancel")))[0] == 200
    assert (await api.call("POST", unit_path(engine, "/runlog/L8/force")))[0] == 200
    inject, cancel, force = engine.requests
    assert isinstance(inject, p.InvokeCommand) and inject.pcode == "PU01: 20 %"
    assert isinstance(cancel, p.CancelLine) and cancel.run_log_id == "L7"
    assert isinstance(force, p.ForceLine) and force.run_log_id == "L8"
    _, page = await api.call("GET", "/api/audit", "admin")
    actions = [e["action"] for e in page["items"]]
    assert actions[:3] == ["force", "cancel", "inject"]


async def test_method_get_put_conflict_refusal_and_check(api: Api, engine: FakeEngine) -> None:
    await engine.method(3, [("a", "Mark: one"), ("b", "Mark: two")])
    await until(lambda: engine.engine_id in api.agg.app[API_STATE_KEY].methods, 5, "method")
    status, view = await api.call("GET", unit_path(engine, "/method"), "viewer")
    assert status == 200
    assert view["version"] == 3 and view["text"] == "Mark: one\nMark: two"
    api.agg.app[API_STATE_KEY].methods.clear()  # as after a restart: read back from storage
    assert (await api.call("GET", unit_path(engine, "/method"), "viewer"))[1] == view

    status, body = await api.call(
        "PUT", unit_path(engine, "/method"), json={"text": "Mark: x", "expected_version": 2}
    )
    assert status == 409 and body["field"] == "expected_version"
    assert not engine.requests

    finding = {"severity": "warning", "code": "W1", "message": "unused", "line": 1}

    def answer(m: Any) -> tuple[bool, str | None, Any]:
        if isinstance(m, p.SetMethod) and m.dry_run:
            return True, None, {"findings": [finding]}
        if isinstance(m, p.SetMethod) and "bad" in m.text:
            return False, "line 1: unknown instruction", None
        return True, None, {"version": 4}

    engine.answer = answer
    status, body = await api.call(
        "PUT", unit_path(engine, "/method"), json={"text": "Mark: x", "expected_version": 3}
    )
    assert status == 200 and body["version"] == 4
    assert body["findings"][0]["code"] == "W1"
    saved = engine.requests[0]
    assert isinstance(saved, p.SetMethod) and not saved.dry_run and saved.expected_version == 3

    await engine.method(4, [("c", "Mark: x")])
    await until(lambda: api.agg.app[API_STATE_KEY].methods[engine.engine_id].version == 4, 5, "v4")
    status, body = await api.call(
        "PUT", unit_path(engine, "/method"), json={"text": "bad", "expected_version": 4}
    )
    assert status == 422 and body["field"] == "text"
    assert body["findings"] == [{**finding, "col_start": 1, "col_end": 1, "suggestion": None}]

    status, body = await api.call(
        "POST", unit_path(engine, "/method/check"), "viewer", json={"text": "Mark: y"}
    )
    assert status == 200 and body["findings"][0]["message"] == "unused"
    assert isinstance(engine.requests[-1], p.SetMethod) and engine.requests[-1].dry_run


async def test_stale_method_version_is_read_from_the_engines_data(
    api: Api, engine: FakeEngine
) -> None:
    """The engine names its current version in CommandResult.data; the error text is read only
    for older engines that do not."""
    finding = {"severity": "info", "code": "I1", "message": "fine", "line": 1}
    answers: list[tuple[bool, str | None, Any]] = [
        (False, "stale edit", {"current_version": 7}),  # no version in the text at all
        (False, "expected 2 but the method version is 5", None),  # an older engine
        (False, "line 1 says method version is 9", {"findings": []}),  # refused for content
        (True, None, {"version": 8, "findings": [finding]}),
    ]

    def answer(m: Any) -> tuple[bool, str | None, Any]:
        if isinstance(m, p.SetMethod) and m.dry_run:
            return True, None, {"findings": []}
        return answers.pop(0)

    engine.answer = answer
    path = unit_path(engine, "/method")
    status, body = await api.call("PUT", path, json={"text": "Mark: a", "expected_version": 2})
    assert status == 409 and body["field"] == "expected_version"
    assert "version 7" in body["error"]
    status, body = await api.call("PUT", path, json={"text": "Mark: a", "expected_version": 2})
    assert status == 409 and body["field"] == "expected_version"
    status, body = await api.call("PUT", path, json={"text": "Mark: a", "expected_version": 2})
    assert status == 422 and body["field"] == "text"
    sent = len(engine.requests)
    status, body = await api.call("PUT", path, json={"text": "Mark: b", "expected_version": 7})
    assert status == 200 and body == {
        "version": 8,
        "findings": [{**finding, "col_start": 1, "col_end": 1, "suggestion": None}],
        "findings_omitted": 0,
    }
    assert len(engine.requests) == sent + 1  # the findings came with the answer: no dry run


async def test_every_action_leaves_its_audit_record_accepted_or_refused(
    api: Api, engine: FakeEngine
) -> None:
    run_id = "run-a" + engine.engine_id[-6:]
    await engine.run_started(run_id, time.time())
    await until(lambda: api.agg.ctx.live.engines[engine.engine_id].run_id == run_id, 5, "run")
    status, _ = await api.call("POST", unit_path(engine, "/inject"), json={"pcode": "Mark: m"})
    assert status == 200
    engine.answer = lambda m: (False, "line l1 is not running", None)
    status, _ = await api.call("POST", unit_path(engine, "/runlog/l1/cancel"))
    assert status == 409
    engine.answer = lambda m: (True, None, {"version": 3, "findings": []})
    status, _ = await api.call(
        "PUT", unit_path(engine, "/method"), json={"text": "Mark: x", "expected_version": 0}
    )
    assert status == 200
    status, page = await api.call("GET", "/api/audit?limit=3", "admin")
    method, cancel, inject = page["items"]
    assert inject["action"] == "inject" and inject["run_id"] == run_id
    assert inject["new"] == {"pcode": "Mark: m", "result": "ok"}
    assert cancel["action"] == "cancel" and cancel["new"]["line"] == "l1"
    assert "not running" in cancel["new"]["result"]
    assert method["action"] == "method" and method["run_id"] == run_id
    assert method["new"] == {"version": 3, "text": "Mark: x", "result": "ok"}


# --- runs -------------------------------------------------------------------------------------------


async def fill_run(engine: FakeEngine, run_id: str, t0: float, n: int) -> None:
    await engine.run_started(run_id, t0, user="ann")
    for i in range(n):
        await engine.tags(
            run_id,
            t0 + i,
            ack=i == n - 1,
            FT01=float(i % 50),
            Inlet="VA01" if i < n // 2 else "VA02",
        )
    await engine.emit(
        lambda seq: p.RunLog(
            seq=seq,
            time=t0 + 1,
            run_id=run_id,
            lines=[
                p.RunLogLine(
                    id="r1",
                    line_id="a",
                    text="Mark: one",
                    start=t0 + 1,
                    state=p.LineState.COMPLETED,
                )
            ],
        )
    )
    await engine.emit(
        lambda seq: p.ErrorLog(
            seq=seq,
            time=t0 + 2,
            run_id=run_id,
            entries=[p.ErrorLogEntry(time=t0 + 2, level="warning", message="pressure high")],
        )
    )
    await engine.run_stopped(run_id, t0 + n)


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_runs_list_filter_page_detail_plot_csv(api: Api, engine: FakeEngine) -> None:
    t0 = 1_700_000_000.0
    await fill_run(engine, "alpha-1", t0, 300)
    await fill_run(engine, "beta-2", t0 + 1000, 10)
    path = f"/api/runs?unit_id={engine.engine_id}"
    _, page = await api.call("GET", path, "viewer")
    assert [r["id"] for r in page["items"]] == ["beta-2", "alpha-1"]
    alpha = page["items"][1]
    assert alpha["sample_count"] == 600 and alpha["unit_name"] == "Chromatography"
    _, first = await api.call("GET", path + "&limit=1", "viewer")
    assert first["next"] is not None
    _, second = await api.call("GET", path + f"&limit=1&cursor={first['next']}", "viewer")
    assert [r["id"] for r in second["items"]] == ["alpha-1"] and second["next"] is None
    _, found = await api.call("GET", path + "&q=ALPHA", "viewer")
    assert [r["id"] for r in found["items"]] == ["alpha-1"]
    _, window = await api.call("GET", path + f"&since={t0 + 500}&until={t0 + 2000}", "viewer")
    assert [r["id"] for r in window["items"]] == ["beta-2"]

    status, detail = await api.call("GET", "/api/runs/alpha-1", "viewer")
    assert status == 200
    assert detail["runlog"][0]["text"] == "Mark: one"
    assert detail["errors"][0]["message"] == "pressure high"
    assert detail["uod"]["name"] == "Chromatography" and detail["stopped"] == t0 + 300
    assert (await api.call("GET", "/api/runs/nope", "viewer"))[0] == 404

    status, plot = await api.call(
        "GET", "/api/runs/alpha-1/plot?tags=FT01,Inlet&points=20", "viewer"
    )
    assert status == 200
    ft, inlet = plot["series"]
    assert len(ft["t"]) <= 20 and max(ft["v"]) == 49.0 and min(ft["v"]) == 0.0
    assert ft["run_time"][0] == ft["t"][0] - t0 and ft["unit"] == "L/h"
    assert inlet["v"] == ["VA01", "VA02"]
    status, body = await api.call("GET", "/api/runs/alpha-1/plot?tags=Nope", "viewer")
    assert status == 422 and body["field"] == "tags"

    status, text = await api.call("GET", "/api/runs/alpha-1/csv", "viewer")
    assert status == 200
    lines = str(text).splitlines()
    assert lines[0].startswith("# unit:")
    header = next(line for line in lines if not line.startswith("#"))
    assert header.startswith("UTC timestamp,Run Time,")


async def test_plot_of_a_tag_without_data_is_an_empty_series(api: Api, engine: FakeEngine) -> None:
    t0 = 1_700_000_000.0
    await fill_run(engine, "gamma-3", t0, 10)  # FT01 and Inlet change; PT01 never does
    for path in ("/api/runs/gamma-3/plot", unit_path(engine, "/plot")):
        if path.startswith("/api/units"):
            await engine.run_started("gamma-4", t0 + 100)
            await engine.tags("gamma-4", t0 + 101, FT01=3.0)
        status, plot = await api.call("GET", f"{path}?tags=FT01,PT01", "viewer")
        assert status == 200, plot
        ft, pt = plot["series"]
        assert ft["tag"] == "FT01" and ft["v"]
        assert pt == {"tag": "PT01", "unit": "bar", "t": [], "run_time": [], "v": []}
        status, body = await api.call("GET", f"{path}?tags=FT01,Nope", "viewer")
        assert status == 422 and body["field"] == "tags" and "Nope" in body["error"]


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_csv_of_a_unit_with_required_roles(api: Api) -> None:
    uod = p.UodDescription(
        name="Secret",
        required_roles=["operator"],
        tags=[p.TagDescription(name="FT01", unit="L/h", kind="reading")],
    )
    secret = await api.engine(uod=uod)
    run_id = "secret-" + secret.engine_id.split("/")[0]
    try:
        await fill_run(secret, run_id, 1_700_000_000.0, 5)
        path = f"/api/runs/{run_id}/csv"
        status, body = await api.call("GET", path, "viewer")
        assert status == 403 and "may not see" in body["error"]
        assert body["field"] is None
        # the same answer as the run's other endpoints
        assert (await api.call("GET", f"/api/runs/{run_id}", "viewer"))[0] == 403
        status, text = await api.call("GET", path, "operator")
        assert status == 200 and str(text).startswith("# unit:")
        assert (await api.call("GET", "/api/runs/no-such-run/csv", "viewer"))[0] == 404
    finally:
        await secret.aclose()


# --- bad input ---------------------------------------------------------------------------------------


async def test_bad_input_is_named_and_never_a_traceback(
    api: Api, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    control = unit_path(engine, "/control")
    status, body = await api.call(
        "POST", control, data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["field"] == "body"
    status, body = await api.call("POST", control, json={"action": "Explode"})
    assert status == 422 and body["field"] == "action"
    status, body = await api.call("POST", control, json={})
    assert status == 422 and body["field"] == "action"
    status, body = await api.call("POST", control, json={"action": "Stop", "extra": 1})
    assert status == 422 and body["field"] == "extra"
    status, body = await api.call("GET", "/api/runs?limit=0", "viewer")
    assert status == 400 and body["field"] == "limit"
    status, body = await api.call("GET", unit_path(engine, "/plot?points=x"), "viewer")
    assert status == 400 and body["field"] == "points"
    status, body = await api.call(
        "PUT", unit_path(engine, "/method"), json={"text": 5, "expected_version": -1}
    )
    assert status == 422 and body["field"] in ("text", "expected_version")
    assert (await api.call("POST", "/api/units/ghost/control", json={"action": "Stop"}))[0] == 404
    assert (await api.call("GET", "/api/runs/ghost/plot", "viewer"))[0] == 404
    status, body = await api.call(
        "POST",
        "/api/users",
        "admin",
        json={"name": "x y", "role": "viewer", "password": "long enough, surely"},
    )
    assert status == 422 and body["field"] == "name"
    assert not engine.requests
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- administration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_users_tokens_and_audit_chain(api: Api, tmp_path: Any, db_url: str) -> None:
    status, _ = await api.call(
        "POST",
        "/api/users",
        "admin",
        json={"name": "zoe", "role": "viewer", "password": "long enough, surely"},
    )
    assert status == 201
    assert (
        await api.call(
            "POST",
            "/api/users",
            "admin",
            json={"name": "zoe", "role": "viewer", "password": "long enough, surely"},
        )
    )[0] == 409
    zoe = await api.login("zoe", "long enough, surely")
    status, body = await api.call("PATCH", "/api/users/zoe", "admin", json={"role": "operator"})
    assert status == 200 and body == {"name": "zoe", "role": "operator"}
    async with api.http.get(
        f"{api.url}/api/auth/me", headers={"Authorization": f"Bearer {zoe}"}
    ) as r:
        assert r.status == 401  # a role change ends the sessions
    assert (await api.call("PATCH", "/api/users/nobody", "admin", json={"role": "viewer"}))[
        0
    ] == 404
    assert (await api.call("DELETE", "/api/users/zoe", "admin"))[0] == 204
    status, token = await api.call("POST", "/api/engine-tokens", "admin", json={"name": "pc-9"})
    assert status == 201 and len(token["token"]) > 20

    _, page = await api.call("GET", "/api/audit?limit=100", "admin")
    actions = [e["action"] for e in page["items"]]
    for expected in ("user add", "user change", "user delete", "engine token create", "login"):
        assert expected in actions
    change = next(e for e in page["items"] if e["action"] == "user change" and e["old"])
    refused = next(e for e in page["items"] if e["action"] == "user change" and not e["old"])
    assert refused["new"]["status"] == 404 and refused["new"]["target"] == {"name": "nobody"}
    assert change["old"]["role"] == "viewer" and change["new"]["role"] == "operator"

    from aggregator.cli import main

    key = ["--audit-key", str(api.key_file)]
    assert main(["audit", "verify", "--database", db_url, *key]) == 0
    engine = api.agg.ctx.storage.engine
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET \"user\" = 'mallory' WHERE id = 2"))
    assert main(["audit", "verify", "--database", db_url, *key]) == 1


async def test_openapi_documents_every_api_route(api: Api) -> None:
    status, doc = await api.call("GET", "/api/openapi.json", None)
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in api.agg.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and route.method != "HEAD":
            served.add((route.method, path))
    assert served <= documented, served - documented
    put = doc["paths"]["/api/units/{unit_id}/method"]["put"]
    body_ref = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/MethodPut")
    assert "expected_version" in doc["components"]["schemas"]["MethodPut"]["properties"]
    status, schema = await api.call("GET", "/api/protocol/schema", None)
    assert status == 200 and "RegisterEngine" in str(schema)


async def test_web_ui_fallback_and_missing_build(api: Api, tmp_path: Any) -> None:
    status, text = await api.call("GET", "/", None)
    assert status == 200 and "npm run build" in str(text)
    dist = tmp_path / "no-ui"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>app</html>")
    (dist / "assets" / "a.js").write_text("x=1")
    assert (await api.call("GET", "/runs/abc", None))[1] == "<html>app</html>"
    assert (await api.call("GET", "/assets/a.js", None))[1] == "x=1"
    assert (await api.call("GET", "/assets/missing.js", None))[0] == 404
    status, body = await api.call("GET", "/api/nothing-here", "viewer")
    assert status == 404 and "error" in body
