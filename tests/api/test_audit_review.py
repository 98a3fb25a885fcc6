"""Issue 16 item 5: the audit trail reviewed by admins, filtered by user, unit, run, action and
time (HTTP, with a CSV download), and `setpoint-aggregator audit export` as CSV and JSON; and
`user add --full-name` / `user full-name`, the printed name signatures carry."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from aggregator import cli
from aggregator.store.tables import T_USER
from tests.aggregator.test_cli import InProcess
from tests.api.conftest import Api
from tests.api.regulated_helpers import add_signers, sign


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(capsys, monkeypatch)


async def _trail(api: Api) -> float:
    """A method created and a refused and an accepted signature; the time in between."""
    _, method = await api.call("POST", "/api/methods", json={"name": "M", "text": "Wait: 1 s"})
    await sign(api, "admin", "method_version", method["id"], "reviewed", version=1, password="no")
    middle = time.time()
    status, _ = await sign(api, "admin", "method_version", method["id"], "reviewed", version=1)
    assert status == 201
    return middle


async def test_admins_filter_the_trail_and_download_csv(api: Api, password_hash: str) -> None:
    add_signers(api, password_hash)
    middle = await _trail(api)
    admin = api.names["admin"]
    status, page = await api.call(
        "GET", "/api/audit/search", "admin", params={"user": admin, "action": "signature"}
    )
    assert status == 200 and isinstance(page, dict)
    results = [e["new"]["result"] for e in page["items"]]
    assert results == ["ok", "wrong password: not signed"]  # newest first
    _, page = await api.call(
        "GET",
        "/api/audit/search",
        "admin",
        params={"action": "signature", "since": str(middle)},
    )
    assert [e["new"]["result"] for e in page["items"]] == ["ok"]
    _, page = await api.call("GET", "/api/audit/search", "admin", params={"user": "nobody"})
    assert page["items"] == []
    status, _ = await api.call("GET", "/api/audit/search", "operator")
    assert status == 403
    status, text = await api.call(
        "GET", "/api/audit/export.csv", "admin", params={"action": "signature"}
    )
    assert status == 200 and isinstance(text, str)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["user"] for r in rows] == [admin, admin]
    assert json.loads(rows[1]["new"])["result"] == "ok" and rows[1]["time_utc"].endswith("Z")


async def test_cli_exports_and_names_users(
    api: Api, password_hash: str, db_url: str, main: InProcess
) -> None:
    add_signers(api, password_hash)
    middle = await _trail(api)
    base = ["audit", "export", "--database", db_url, "--action", "signature"]
    result = main(*base, "--format", "json", "--since", str(middle))
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["new"]["result"] for e in entries] == ["ok"]
    assert entries[0]["new"]["full_name"] == "Ada Admin"
    result = main(*base, "--until", str(middle))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [json.loads(r["new"])["status"] for r in rows] == [403]
    bad = main(*base, "--since", "yesterday")
    assert bad.returncode == 2 and "is not a time" in bad.stderr
    bad = main(*base, "--since", "2026-12-02", "--until", "2026-12-01")
    assert bad.returncode == 2 and "--until must be after --since" in bad.stderr

    operator = api.names["operator"]
    assert (
        main("user", "full-name", operator, "Otto Q. Operator", "--database", db_url).returncode
        == 0
    )
    missing = main("user", "full-name", "ghost", "G", "--database", db_url)
    assert missing.returncode == 2 and "no user named 'ghost'" in missing.stderr
    added = main(
        "user",
        "add",
        "newbie",
        "--role",
        "operator",
        "--full-name",
        "Nia Newbie",
        "--password-stdin",
        "--database",
        db_url,
        stdin="lab pass phrase 7\n",
    )
    assert added.returncode == 0, added.stderr
    engine = api.agg.ctx.storage.engine
    with engine.connect() as conn:
        names = dict(
            conn.execute(T_USER.select().with_only_columns(T_USER.c.name, T_USER.c.full_name)).all()
        )
    assert names[operator] == "Otto Q. Operator" and names["newbie"] == "Nia Newbie"
    assert cli.build_parser() is not None
