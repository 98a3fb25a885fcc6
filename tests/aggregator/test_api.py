"""The minimal read API: login, units, runs, CSV export, and its errors."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

import protocol as p
from tests.aggregator.helpers import Aggregator, RawEngine, tags


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: the jar must keep cookies from an IP address (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_login_gives_token_and_strict_httponly_cookie(
    aggregator: Aggregator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{aggregator.url}/api/auth/login",
        json={"username": aggregator.username, "password": aggregator.password},
    ) as r:
        assert r.status == 200
        body = await r.json()
        cookie = r.headers["Set-Cookie"]
    assert len(body["token"]) >= 32
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # the cookie alone authenticates
    async with http.get(f"{aggregator.url}/api/units") as r:
        assert r.status == 200
    # and so does the bearer token, without cookies
    async with (
        aiohttp.ClientSession() as other,
        other.get(
            f"{aggregator.url}/api/units", headers={"Authorization": f"Bearer {body['token']}"}
        ) as r,
    ):
        assert r.status == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"username": "x"}, 422, "password"),
        ({"username": 5, "password": "x"}, 422, "username"),
        ("not an object", 422, "body"),
    ],
)
async def test_bad_login_bodies_name_the_field(
    aggregator: Aggregator, http: aiohttp.ClientSession, body: object, status: int, field: str
) -> None:
    async with http.post(f"{aggregator.url}/api/auth/login", json=body) as r:
        assert r.status == status
        data = await r.json()
    assert field in data["error"]


async def test_login_errors(aggregator: Aggregator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{aggregator.url}/api/auth/login",
        data=b"{oops",
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    async with http.post(
        f"{aggregator.url}/api/auth/login",
        json={"username": aggregator.username, "password": "wrong"},
    ) as r:
        assert r.status == 401 and "password" in (await r.json())["error"]
        assert "Traceback" not in await r.text()


@pytest.mark.parametrize("path", ["/api/units", "/api/runs", "/api/runs/x/csv"])
async def test_missing_login_is_401_json(
    aggregator: Aggregator, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{aggregator.url}{path}", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
        assert "login" in (await r.json())["error"]


async def test_units_runs_and_csv(aggregator: Aggregator, http: aiohttp.ClientSession) -> None:
    headers = await aggregator.login(http)
    engine = RawEngine(aggregator)
    run_ids = [f"run-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        await engine.register()
        seq = 0
        t0 = 1_700_000_000.0
        for index, run_id in enumerate(run_ids):
            start = t0 + 1000 * index
            seq += 1
            await engine.send(
                p.RunStarted(seq=seq, time=start, run_id=run_id, started=start, method_version=2)
            )
            seq += 1
            await engine.send(tags(seq, start + 1, run_id, FT01=1.5, Inlet="VA01"))
            seq += 1
            await engine.send(tags(seq, start + 2, run_id, PT01=0.25))
            seq += 1
            await engine.send(tags(seq, start + 3, run_id, FT01=2.5))
            if index < 2:
                seq += 1
                await engine.send(
                    p.RunStopped(
                        seq=seq, time=start + 4, run_id=run_id, stopped=start + 4, reason="stop"
                    )
                )
        seq += 1
        await engine.send(
            p.ControlState(
                seq=seq,
                time=time.time(),
                run_id=run_ids[2],
                state=p.SystemState.RUNNING,
                block="Load",
                run_time=3.0,
            )
        )
        await engine.wait_ack(seq)

        async with http.get(f"{aggregator.url}/api/units", headers=headers) as r:
            units = await r.json()
        [unit] = [u for u in units if u["id"] == engine.engine_id]
        assert unit["online"] and unit["state"] == "Running" and unit["run_id"] == run_ids[2]
        assert (
            unit["block"] == "Load" and unit["run_time"] == 3.0 and unit["name"] == "Chromatography"
        )

        async with http.get(
            f"{aggregator.url}/api/runs",
            params={"unit_id": engine.engine_id, "limit": "2"},
            headers=headers,
        ) as r:
            page = await r.json()
        assert [i["id"] for i in page["items"]] == [run_ids[2], run_ids[1]]
        assert page["items"][0]["stopped"] is None and page["items"][1]["stopped"] == t0 + 1004
        async with http.get(
            f"{aggregator.url}/api/runs",
            params={"unit_id": engine.engine_id, "limit": "2", "cursor": page["next"]},
            headers=headers,
        ) as r:
            page2 = await r.json()
        assert [i["id"] for i in page2["items"]] == [run_ids[0]] and page2["next"] is None
        async with http.get(
            f"{aggregator.url}/api/runs", params={"limit": "0"}, headers=headers
        ) as r:
            assert r.status in (400, 422) and "limit" in (await r.json())["error"]

        async with http.get(f"{aggregator.url}/api/runs/{run_ids[1]}/csv", headers=headers) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            text = await r.text()
        lines = text.splitlines()
        meta = [line for line in lines if line.startswith("#")]
        assert any(run_ids[1] in m for m in meta) and any(
            "unit: " + engine.engine_id in m for m in meta
        )
        assert any("method version: 2" in m for m in meta) and any(
            "Chromatography" in m for m in meta
        )
        assert any("start: 2023-11-14T22:30:00.000Z" in m for m in meta)
        rows = list(
            csv.reader(io.StringIO("\n".join(line for line in lines if not line.startswith("#"))))
        )
        assert rows[0] == ["UTC timestamp", "Run Time", "FT01 [L/h]", "PT01 [bar]", "Inlet"]
        assert rows[1:] == [
            ["2023-11-14T22:30:01.000Z", "1.000", "1.5", "", "VA01"],
            ["2023-11-14T22:30:02.000Z", "2.000", "1.5", "0.25", "VA01"],
            ["2023-11-14T22:30:03.000Z", "3.000", "2.5", "0.25", "VA01"],
        ]
        async with http.get(f"{aggregator.url}/api/runs/no-such-run/csv", headers=headers) as r:
            assert r.status == 404 and "no-such-run" in (await r.json())["error"]
    finally:
        await engine.aclose()


async def test_unknown_api_path_is_json(
    aggregator: Aggregator, http: aiohttp.ClientSession
) -> None:
    headers = await aggregator.login(http)
    async with http.get(f"{aggregator.url}/api/nothing-here", headers=headers) as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.post(f"{aggregator.url}/api/units", headers=headers) as r:
        assert r.status == 405 and "error" in await r.json()


async def test_odd_unicode_in_login_is_a_clean_401(
    aggregator: Aggregator, http: aiohttp.ClientSession
) -> None:
    body = '{"username": "' + aggregator.username + '", "password": "\\ud800"}'
    async with http.post(
        f"{aggregator.url}/api/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status in (401, 422) and "error" in await r.json()
    async with http.get(
        f"{aggregator.url}/api/units", headers={"Authorization": "Bearer caf\u00e9\u00ff"}
    ) as r:
        assert r.status == 401


async def test_csv_of_a_run_id_with_odd_characters(
    aggregator: Aggregator, http: aiohttp.ClientSession
) -> None:
    headers = await aggregator.login(http)
    engine = RawEngine(aggregator)
    run_id = 'r "\u00fc\u2603; x' + uuid.uuid4().hex[:4]
    try:
        await engine.register()
        await engine.send(
            p.RunStarted(seq=1, time=1000.0, run_id=run_id, started=1000.0, method_version=0)
        )
        await engine.send(tags(2, 1001.0, run_id, FT01=1.0))
        await engine.wait_ack(2)
    finally:
        await engine.aclose()
    async with http.get(f"{aggregator.url}/api/runs/{quote(run_id)}/csv", headers=headers) as r:
        assert r.status == 200
        assert '"run-r___' in r.headers["Content-Disposition"]
        assert run_id in await r.text()
