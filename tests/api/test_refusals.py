"""Every refusal leaves an audit entry naming the user, the action, the unit or target and the
reason: 401 at login, 403 for a role or a unit over HTTP and /ws, 409 for a stale method version
or an engine refusal, refused user and token administration (issue 13 item 3)."""

from __future__ import annotations

from typing import Any

import protocol as p
from aggregator.api.service import API_STATE_KEY
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.live.conftest import WsClient

JsonDict = dict[str, Any]


async def audit(api: Api) -> list[JsonDict]:
    status, page = await api.call("GET", "/api/audit?limit=1000", "admin")
    assert status == 200
    return list(page["items"])


def refused(entries: list[JsonDict], action: str, status: int) -> list[JsonDict]:
    return [
        e
        for e in entries
        if e["action"] == action and isinstance(e["new"], dict) and e["new"].get("status") == status
    ]


async def test_role_and_unit_refusals_over_http_are_audited(api: Api, engine: FakeEngine) -> None:
    unit = engine.engine_id
    path = f"/api/units/{unit.replace('/', '%2F')}/control"
    status, body = await api.call("POST", path, "viewer", json={"action": "Stop"})
    assert status == 403
    status, _ = await api.call("GET", "/api/users", "operator")
    assert status == 403

    entries = await audit(api)
    [control] = refused(entries, "control", 403)
    assert control["user"] == api.names["viewer"] and control["unit_id"] == unit
    assert control["new"]["result"] == body["error"]
    [users] = refused(entries, "GET /api/users", 403)
    assert users["user"] == api.names["operator"] and "admin role" in users["new"]["result"]


async def test_a_unit_the_user_may_not_see_is_audited_over_http_and_ws(api: Api) -> None:
    uod = p.UodDescription(
        name="Secret",
        required_roles=["operator"],
        tags=[p.TagDescription(name="X", kind="reading")],
    )
    secret = await api.engine(uod=uod)
    viewer = WsClient(api, "viewer")
    try:
        unit = secret.engine_id
        status, _ = await api.call("GET", f"/api/units/{unit.replace('/', '%2F')}", "viewer")
        assert status == 403
        await viewer.connect()
        await viewer.send({"action": "subscribe", "topic": f"unit/{unit}/tags", "id": "s1"})
        await viewer.wait(lambda f: f.get("type") == "error" and f.get("id") == "s1")
        await viewer.send({"action": "stop", "id": "a1", "unit": unit})
        end = await viewer.task_end("a1")
        assert end["status"] == "exception"
    finally:
        await viewer.close()
        await secret.aclose()
    entries = await audit(api)
    [http] = refused(entries, "GET /api/units/{unit_id}", 403)
    assert http["unit_id"] == unit and http["user"] == api.names["viewer"]
    [subscribe] = refused(entries, "subscribe", 403)
    assert subscribe["unit_id"] == unit and subscribe["new"]["via"] == "ws"
    [stop] = refused(entries, "stop", 403)
    assert stop["unit_id"] == unit and stop["user"] == api.names["viewer"]


async def test_stale_version_and_engine_refusals_are_audited(api: Api, engine: FakeEngine) -> None:
    unit = engine.engine_id
    base = f"/api/units/{unit.replace('/', '%2F')}"
    await engine.method(3, [("a", "Mark: one")])
    await until(lambda: unit in api.agg.app[API_STATE_KEY].methods, 5, "method")
    stale_edit = {"text": "Mark: b", "expected_version": 2}
    assert (await api.call("PUT", f"{base}/method", json=stale_edit))[0] == 409
    engine.answer = lambda _m: (False, "not while stopped", None)
    status, _ = await api.call("POST", f"{base}/control", json={"action": "Pause"})
    assert status == 409

    entries = await audit(api)
    [stale] = refused(entries, "method", 409)
    assert stale["unit_id"] == unit and "version" in stale["new"]["result"]
    [control] = [e for e in entries if e["action"] == "control"]
    assert "not while stopped" in control["new"]["result"]  # recorded once, by the action
    assert control["user"] == api.names["operator"]


async def test_login_and_user_administration_refusals_are_audited(api: Api) -> None:
    async with api.http.post(
        f"{api.url}/api/auth/login", json={"username": "mallory", "password": "guess"}
    ) as r:
        assert r.status == 401
    weak = {"name": "newbie", "role": "viewer", "password": "password1234"}
    assert (await api.call("POST", "/api/users", "admin", json=weak))[0] == 422
    me = api.names["admin"]
    assert (await api.call("DELETE", f"/api/users/{me}", "admin"))[0] == 409
    assert (await api.call("POST", "/api/engine-tokens", "operator", json={"name": "x"}))[0] == 403

    entries = await audit(api)
    [login] = [e for e in entries if e["action"] == "login"]
    assert login["user"] == "mallory" and login["new"]["result"] == "wrong user name or password"
    [add] = refused(entries, "user add", 422)
    assert add["user"] == me and add["new"]["target"] == {"name": "newbie"}
    assert "too common" in add["new"]["result"]
    [delete] = refused(entries, "user delete", 409)
    assert delete["new"]["target"] == {"name": me}
    [token] = refused(entries, "engine token create", 403)
    assert token["user"] == api.names["operator"] and token["new"]["target"] == {"name": "x"}


async def test_anonymous_requests_do_not_fill_the_trail(api: Api) -> None:
    """A 401 without a session names nobody; anyone could send millions of them."""
    before = len(await audit(api))
    for _ in range(3):
        assert (await api.call("GET", "/api/units", None))[0] == 401
    assert len(await audit(api)) == before
