"""Every /api route goes through the one registry: login, logout and the streamed CSV export are
documented like the rest, and every error under /api has the one body docs/api.md describes."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.api import runs_csv
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.api.test_http import fill_run

ERROR_REF = "#/components/schemas/ErrorBody"


def _ref(content: dict[str, Any]) -> str:
    return str(content["application/json"]["schema"]["$ref"])


async def _document(api: Api) -> dict[str, Any]:
    status, doc = await api.call("GET", "/api/openapi.json", None)
    assert status == 200 and isinstance(doc, dict)
    return doc


async def test_login_logout_and_csv_are_documented_with_their_schemas(api: Api) -> None:
    doc = await _document(api)
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    login = paths["/api/auth/login"]["post"]
    assert login["security"] == [] and "x-required-role" not in login
    assert _ref(login["requestBody"]["content"]) == "#/components/schemas/LoginRequest"
    assert set(schemas["LoginRequest"]["required"]) == {"username", "password"}
    assert _ref(login["responses"]["200"]["content"]) == "#/components/schemas/LoginResult"
    result = schemas["LoginResult"]
    assert set(result["properties"]) == {
        "token",
        "expires",
        "user",
        "username",
        "role",
        "expires_in",
    }
    assert set(result["required"]) == set(result["properties"])
    for status in ("400", "401", "422"):
        assert _ref(login["responses"][status]["content"]) == ERROR_REF

    logout = paths["/api/auth/logout"]["post"]
    assert logout["x-required-role"] == "viewer" and "requestBody" not in logout
    assert set(logout["responses"]) == {"204", "401", "403"}
    assert "content" not in logout["responses"]["204"]

    csv = paths["/api/runs/{run_id}/csv"]["get"]
    assert csv["x-required-role"] == "viewer"
    assert csv["parameters"] == [
        {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert csv["responses"]["200"]["content"] == {"text/csv": {"schema": {"type": "string"}}}
    for status in ("401", "403", "404"):
        assert _ref(csv["responses"][status]["content"]) == ERROR_REF
    assert set(schemas["ErrorBody"]["properties"]) == {
        "error",
        "field",
        "findings",
        "findings_omitted",
    }


async def test_a_login_answers_what_its_schema_says(api: Api) -> None:
    doc = await _document(api)
    result = doc["components"]["schemas"]["LoginResult"]
    async with api.http.post(
        f"{api.url}/api/auth/login",
        json={"username": api.names["operator"], "password": "correct horse"},
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert set(body) == set(result["properties"])
    assert body["user"] == {"name": api.names["operator"], "role": "operator"}
    assert body["username"] == body["user"]["name"] and body["role"] == "operator"


async def _error(api: Api, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with api.http.request(method, f"{api.url}{path}", **kw) as response:
        assert response.content_type == "application/json", await response.text()
        body = await response.json()
    return response.status, body


async def test_errors_of_login_logout_csv_and_unknown_paths_share_one_body(api: Api) -> None:
    viewer = api.auth("viewer")
    login = "/api/auth/login"
    answers = {
        "login, bad JSON": await _error(
            api, "POST", login, data=b"{", headers={"Content-Type": "application/json"}
        ),
        "login, bad body": await _error(api, "POST", login, json={"username": "x"}),
        "login, wrong password": await _error(
            api, "POST", login, json={"username": api.names["viewer"], "password": "nope"}
        ),
        "logout, not logged in": await _error(api, "POST", "/api/auth/logout"),
        "csv, not logged in": await _error(api, "GET", "/api/runs/x/csv"),
        "csv, no such run": await _error(api, "GET", "/api/runs/x/csv", headers=viewer),
        "unknown path": await _error(api, "GET", "/api/nothing-here", headers=viewer),
        "wrong method": await _error(api, "DELETE", "/api/auth/login"),
        "login, body too large": await _error(
            api,
            "POST",
            login,
            data=b" " * (1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
        ),
    }
    statuses = {name: status for name, (status, _) in answers.items()}
    assert statuses == {
        "login, bad JSON": 400,
        "login, bad body": 422,
        "login, wrong password": 401,
        "logout, not logged in": 401,
        "csv, not logged in": 401,
        "csv, no such run": 404,
        "unknown path": 404,
        "wrong method": 405,
        "login, body too large": 413,
    }
    for name, (_, body) in answers.items():
        assert set(body) == {"error", "field"}, name
        assert isinstance(body["error"], str) and "\n" not in body["error"], name
    assert answers["login, bad JSON"][1]["field"] == "body"
    assert answers["login, bad body"][1] == {
        "error": "invalid request body: password: Field required",
        "field": "password",
    }
    assert answers["login, wrong password"][1]["error"] == "wrong user name or password"
    assert answers["csv, not logged in"][1]["error"].startswith("not logged in: POST /api/auth")
    assert answers["csv, no such run"][1]["error"] == "no run with id 'x'"


async def test_login_ignores_unknown_fields(api: Api) -> None:
    async with api.http.post(
        f"{api.url}/api/auth/login",
        json={"username": api.names["viewer"], "password": "correct horse", "remember": True},
    ) as response:
        assert response.status == 200


async def test_csv_is_streamed_a_block_at_a_time(
    api: Api, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_csv, "BLOCK_ROWS", 3)
    await fill_run(engine, "gamma-3", 1_700_000_000.0, 10)
    chunks: list[bytes] = []
    async with api.http.get(
        f"{api.url}/api/runs/gamma-3/csv", headers=api.auth("viewer")
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == 'attachment; filename="run-gamma-3.csv"'
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        http_chunk = b""
        async for data, end_of_http_chunk in response.content.iter_chunks():
            http_chunk += data
            if end_of_http_chunk and http_chunk:
                chunks.append(http_chunk)
                http_chunk = b""
    preamble, *blocks = (chunk.decode().splitlines() for chunk in chunks)
    assert preamble[0].startswith("# unit:") and preamble[-1].startswith("UTC timestamp,Run Time,")
    assert [len(block) for block in blocks] == [3, 3, 3, 1]  # one HTTP chunk per block read
    assert blocks[0][0].startswith("2023-11-14T22:13:20.000Z,0.000,")
