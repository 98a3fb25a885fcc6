"""Bad input is a 4xx with the one JSON error body, never a 500: deeply nested JSON, numbers
out of range, huge cursors and limits (issue 13 item 6)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine

NESTED = "[" * 100_000 + "]" * 100_000


def unit(engine: FakeEngine, tail: str) -> str:
    return f"/api/units/{engine.engine_id.replace('/', '%2F')}{tail}"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (NESTED, 400),
        ('{"action": ' + NESTED + "}", 400),
        ('{"pcode": "x", "n": 1e999999}', 400),
        ('{"pcode": "x", "n": -1e400}', 400),
        ('{"pcode": "x", "n": NaN}', 400),
        ('{"pcode": "x", "n": Infinity}', 400),
        ('{"pcode": "x", "n": ' + "9" * 5000 + "}", 400),
        (b'{"pcode": "\xff\xfe"}', 400),
        ('{"text": "Mark: a", "expected_version": ' + "9" * 40 + "}", None),
        ('{"text": "Mark: a", "expected_version": 1e300}', None),
        ('{"pcode": "\\ud800", "text": "\\udfff", "expected_version": 0}', None),
    ],
)
async def test_malformed_bodies_are_4xx(
    api: Api, engine: FakeEngine, body: str | bytes, status: int | None
) -> None:
    for method, path in (
        ("POST", unit(engine, "/inject")),
        ("POST", unit(engine, "/control")),
        ("PUT", unit(engine, "/method")),
        ("POST", "/api/users"),
    ):
        role = "admin" if path == "/api/users" else "operator"
        got, answer = await api.call(
            method, path, role, data=body, headers={"Content-Type": "application/json"}
        )
        assert got < 500, (path, answer)
        if got >= 400:
            assert isinstance(answer, dict) and answer["error"], answer
        if status is not None:
            assert got == status, (path, answer)


@pytest.mark.parametrize(
    "query",
    [
        "/api/runs?cursor=" + "9" * 19,
        "/api/runs?cursor=" + "9" * 400,
        "/api/runs?limit=" + "9" * 400,
        "/api/runs?limit=1e999",
        "/api/runs?since=inf",
        "/api/runs?until=nan",
        "/api/runs?since=" + "9" * 400,
        "/api/audit?cursor=" + "9" * 40,
        "/api/audit?cursor=-1",
        "/api/audit?limit=" + "9" * 4000,
    ],
)
async def test_huge_cursors_and_numbers_in_queries_are_400(api: Api, query: str) -> None:
    status, body = await api.call("GET", query, "admin")
    assert status == 400, body
    assert isinstance(body, dict) and body["field"] in ("cursor", "limit", "since", "until")


async def test_extreme_but_finite_plot_windows_are_not_500(api: Api, engine: FakeEngine) -> None:
    for window in ("start=-1e308&end=1e308", "start=1e308", "end=-1e308", "points=2&start=0&end=0"):
        status, body = await api.call("GET", unit(engine, f"/plot?{window}"), "viewer")
        assert status < 500, body
    for window in ("start=inf", "end=-inf", "start=nan", "points=" + "9" * 30):
        status, body = await api.call("GET", unit(engine, f"/plot?{window}"), "viewer")
        assert status == 400, body
