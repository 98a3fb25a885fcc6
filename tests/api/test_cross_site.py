"""Cookie-authenticated changes and /ws upgrades must come from this site's pages; bearer-token
clients are unaffected (issue 13 item 5)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from aggregator.api.openapi import ROUTES_KEY
from aggregator.api.origin import CrossSiteGuard, OriginError, normalize_origin
from tests.api.conftest import Api

EVIL = "http://evil.example"


def cookie(api: Api, role: str = "admin") -> dict[str, str]:
    return {"Cookie": f"setpoint_session={api.tokens[role]}"}


async def post(api: Api, path: str, headers: dict[str, str], data: Any = None) -> int:
    async with api.http.post(f"{api.url}{path}", headers=headers, data=data) as r:
        return r.status


async def test_cookie_changes_need_this_sites_origin_and_json(api: Api) -> None:
    token = '{"name": "pc-x"}'
    json_type = {"Content-Type": "application/json"}
    path = "/api/engine-tokens"
    assert await post(api, path, {**cookie(api), **json_type}, token) == 403  # no Origin
    assert await post(api, path, {**cookie(api), **json_type, "Origin": EVIL}, token) == 403
    assert await post(api, path, {**cookie(api), **json_type, "Origin": "null"}, token) == 403
    form = {"Content-Type": "text/plain", "Origin": api.url}
    assert await post(api, path, {**cookie(api), **form}, token) == 403
    referer = {**json_type, "Referer": f"{api.url}/admin"}
    assert await post(api, path, {**cookie(api), **referer}, token) == 201
    own = {**json_type, "Origin": api.url}
    assert await post(api, path, {**cookie(api), **own}, '{"name": "pc-y"}') == 201
    # a body-less change (logout) needs them too
    assert await post(api, "/api/auth/logout", {**cookie(api, "viewer")}) == 403
    assert await post(api, "/api/auth/logout", {**cookie(api, "viewer"), **own}) == 204

    _, page = await api.call("GET", "/api/audit?limit=100", "admin")
    refused = [e for e in page["items"] if e["new"] and e["new"].get("status") == 403]
    assert len(refused) == 5
    assert any("cross-site request from http://evil.example" in e["new"]["result"] for e in refused)


async def test_reads_and_bearer_clients_are_unaffected(api: Api) -> None:
    async with api.http.get(f"{api.url}/api/auth/me", headers={**cookie(api), "Origin": EVIL}) as r:
        assert r.status == 200  # a read changes nothing (and the browser hides the answer)
    # a bearer token is never sent by a browser on its own: no origin or type check
    headers = {**api.auth("admin"), "Origin": EVIL, **cookie(api), "Content-Type": "text/plain"}
    assert await post(api, "/api/engine-tokens", headers, '{"name": "pc-z"}') == 201


async def test_login_from_another_sites_page_is_refused(api: Api) -> None:
    body = {"username": api.names["viewer"], "password": "correct horse"}
    async with api.http.post(f"{api.url}/api/auth/login", json=body, headers={"Origin": EVIL}) as r:
        assert r.status == 403
    async with api.http.post(
        f"{api.url}/api/auth/login", json=body, headers={"Origin": api.url}
    ) as r:
        assert r.status == 200
    async with api.http.post(f"{api.url}/api/auth/login", json=body) as r:
        assert r.status == 200  # scripts send no Origin


async def test_allowed_origins_are_configurable(api: Api) -> None:
    api.agg.app[ROUTES_KEY].guard = CrossSiteGuard(["https://ui.example.org:8443"])
    headers = {**cookie(api), "Content-Type": "application/json"}
    ok = {**headers, "Origin": "https://UI.example.org:8443"}
    assert await post(api, "/api/engine-tokens", ok, '{"name": "a1"}') == 201
    other_port = {**headers, "Origin": "https://ui.example.org"}
    assert await post(api, "/api/engine-tokens", other_port, '{"name": "a2"}') == 403


async def test_ws_upgrade_with_the_cookie_checks_origin(api: Api) -> None:
    url = f"{api.url}/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.http.ws_connect(url, headers={**cookie(api, "viewer"), "Origin": EVIL})
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.http.ws_connect(url, headers=cookie(api, "viewer"))
    assert refused.value.status == 403
    ws = await api.http.ws_connect(url, headers={**cookie(api, "viewer"), "Origin": api.url})
    await ws.close()
    ws = await api.http.ws_connect(url, headers={**api.auth("viewer"), "Origin": EVIL})
    await ws.close()  # bearer: not a browser's doing

    _, page = await api.call("GET", "/api/audit?limit=100", "admin")
    upgrades = [e for e in page["items"] if e["action"] == "ws connect"]
    assert len(upgrades) == 2 and upgrades[0]["user"] == api.names["viewer"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:9800", "http://127.0.0.1:9800"),
        ("HTTPS://Lab.Example.org:443/", "https://lab.example.org"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_origins_are_normalized(url: str, origin: str) -> None:
    assert normalize_origin(url) == origin


@pytest.mark.parametrize("url", ["lab.example.org", "ftp://lab", "http://", "http://x:99999"])
def test_bad_allowed_origins_are_named(url: str) -> None:
    with pytest.raises(OriginError):
        normalize_origin(url)
