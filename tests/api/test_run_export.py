"""Runs for spreadsheet users: the .xlsx export read back and compared with the CSV, the offline
`run export` command, the batch name stored per run, and the Start recorded against its run."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

import aggregator.run_export
import protocol as p
from aggregator.cli import main
from aggregator.run_export import XLSX_MEDIA_TYPE
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.api.test_http import fill_run

T0 = 1_700_000_000.25


async def fill_mixed_run(engine: FakeEngine, run_id: str) -> None:
    """Numbers, text (one that looks like a formula), true/false, and a value carried forward."""
    await engine.run_started(run_id, T0, user="ann")
    await engine.tags(run_id, T0 - 2.5, FT01=1.5, Inlet="VA01", Alarm=False)
    await engine.tags(run_id, T0 + 1.125, FT01=2.0)
    await engine.tags(run_id, T0 + 2, Inlet='=HYPERLINK("x")', Alarm=True)
    await engine.tags(run_id, T0 + 3, FT01=-0.25)


async def download(api: Api, path: str, role: str = "viewer") -> tuple[int, str, bytes]:
    async with api.http.get(f"{api.url}{path}", headers=api.auth(role)) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


def parse_csv(text: str) -> tuple[dict[str, str], list[str], list[list[str]]]:
    lines = text.splitlines()
    meta = dict(line[2:].split(": ", 1) for line in lines if line.startswith("# "))
    header, *rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    return meta, header, rows


def same_cell(xlsx: Any, text: str) -> bool:
    if text == "":
        return xlsx is None
    if isinstance(xlsx, bool):
        return text == ("true" if xlsx else "false")
    if isinstance(xlsx, int | float):
        return float(text) == pytest.approx(float(xlsx), abs=1e-9)
    return str(xlsx) == text


async def test_the_workbook_holds_the_csv_values(api: Api, engine: FakeEngine) -> None:
    run_id = "mixed-" + engine.engine_id.split("/")[0]
    await fill_mixed_run(engine, run_id)
    await engine.control_state(p.SystemState.RUNNING, run_id=run_id, batch_name="B-42")

    status, kind, body = await download(api, f"/api/runs/{run_id}/csv")
    assert status == 200 and kind.startswith("text/csv")
    meta, header, rows = parse_csv(body.decode())
    status, kind, xlsx = await download(api, f"/api/runs/{run_id}/xlsx")
    assert status == 200 and kind == XLSX_MEDIA_TYPE

    book = load_workbook(io.BytesIO(xlsx))
    assert book.sheetnames == ["Data", "Run"]
    data = list(book["Data"].iter_rows(values_only=True))
    assert list(data[0]) == header
    assert len(data) - 1 == len(rows) == 4
    for got, want in zip(data[1:], rows, strict=True):
        stamp = datetime.fromisoformat(want[0].replace("Z", "+00:00"))
        assert isinstance(got[0], datetime)
        assert abs(got[0] - stamp.replace(tzinfo=None)).total_seconds() < 0.001
        assert got[1] == pytest.approx(float(want[1]), abs=1e-9)
        assert all(same_cell(g, w) for g, w in zip(got[2:], want[2:], strict=True)), (got, want)
    assert data[1][1] == -2.5  # sampled before Start: negative Run Time
    inlet = header.index("Inlet")
    assert data[3][inlet] == '=HYPERLINK("x")'  # text, not a formula
    assert book["Data"].cell(4, inlet + 1).data_type == "s"
    assert {k: v or "" for k, v in book["Run"].iter_rows(values_only=True)} == meta
    assert meta["batch"] == "B-42" and meta["run id"] == run_id


async def test_xlsx_guards_and_limits(
    api: Api, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = "long-" + engine.engine_id.split("/")[0]
    await fill_run(engine, run_id, T0, 5)
    assert (await download(api, "/api/runs/nope/xlsx"))[0] == 404
    monkeypatch.setattr(aggregator.run_export, "EXCEL_MAX_ROWS", 5)
    status, body = await api.call("GET", f"/api/runs/{run_id}/xlsx", "viewer")
    assert status == 422
    assert body["error"] == (
        f"run {run_id!r} has more than 4 sample times, more than an Excel sheet holds; "
        "export it as CSV"
    )
    monkeypatch.setattr(aggregator.run_export, "EXCEL_MAX_ROWS", 6)
    status, _, xlsx = await download(api, f"/api/runs/{run_id}/xlsx")
    assert status == 200 and load_workbook(io.BytesIO(xlsx))["Data"].max_row == 6


async def test_batch_name_is_stored_per_run(api: Api, engine: FakeEngine) -> None:
    run_id = "batch-" + engine.engine_id.split("/")[0]
    await fill_run(engine, run_id, T0, 3)
    await engine.control_state(p.SystemState.RUNNING, run_id=run_id, batch_name="Lot 7/A")
    await engine.control_state(p.SystemState.STOPPED, run_id=run_id, batch_name="")
    status, page = await api.call("GET", "/api/runs?q=lot%207", "viewer")
    assert status == 200
    assert [(r["id"], r["batch_name"]) for r in page["items"]] == [(run_id, "Lot 7/A")]
    status, detail = await api.call("GET", f"/api/runs/{run_id}", "viewer")
    assert status == 200 and detail["batch_name"] == "Lot 7/A"


async def test_start_is_recorded_against_the_run_it_started(api: Api, engine: FakeEngine) -> None:
    run_id = "started-" + engine.engine_id.split("/")[0]
    sent: list[asyncio.Task[int]] = []

    def answer(request: Any) -> tuple[bool, None, None]:
        # like a real engine: the answer goes out before its RunStarted arrives
        sent.append(asyncio.ensure_future(engine.run_started(run_id, time.time(), user="x")))
        return True, None, None

    engine.answer = answer
    path = f"/api/units/{quote(engine.engine_id, safe='')}/control"
    status, _ = await api.call("POST", path, "operator", json={"action": "Start"})
    assert status == 200
    status, audit = await api.call("GET", "/api/audit", "admin")
    assert status == 200
    start = next(e for e in audit["items"] if e["action"] == "control")
    assert start["run_id"] == run_id and start["new"]["action"] == "Start"
    status, detail = await api.call("GET", f"/api/runs/{run_id}", "viewer")
    assert status == 200
    contributors = detail["contributors"]
    assert [(c["user"], c["actions"]) for c in contributors] == [(api.names["operator"], 1)]
    await asyncio.gather(*sent)


# --- setpoint-aggregator run export -------------------------------------------------------------


async def test_run_export_works_offline_on_the_database(
    api: Api,
    engine: FakeEngine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_id = "cli-" + engine.engine_id.split("/")[0]
    await fill_mixed_run(engine, run_id)
    _, _, served_csv = await download(api, f"/api/runs/{run_id}/csv")
    # offline: a copy of the database that no server has open
    copy = tmp_path / "copy.sqlite3"
    with (
        closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(copy)) as target_db,
    ):
        source.backup(target_db)
    db_url = f"sqlite:///{copy}"

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    assert main(["run", "export", run_id, "--database", db_url]) == 0
    written = out / f"run-{run_id}.csv"
    assert written.read_bytes() == served_csv
    assert f"4 rows written to {written.name}" in capsys.readouterr().err

    target = out / "out.xlsx"
    argv = ["run", "export", run_id, "--format", "xlsx", "-o", str(target), "--database", db_url]
    assert main(argv) == 0
    rows = list(load_workbook(target)["Data"].iter_rows(values_only=True))
    _, header, csv_rows = parse_csv(served_csv.decode())
    assert list(rows[0]) == header and len(rows) == len(csv_rows) + 1

    capsys.readouterr()
    assert main(["run", "export", run_id, "-o", "-", "--database", db_url]) == 0
    assert capsys.readouterr().out.encode() == served_csv
    assert sorted(p.name for p in out.iterdir()) == ["out.xlsx", f"run-{run_id}.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-run"], "no run with id 'no-such-run'"),
        (
            ["RUN", "-o", "missing/out.csv"],
            "--output missing/out.csv: directory missing does not exist",
        ),
        (["RUN", "-o", "."], "--output . is a directory; give a file name"),
    ],
)
async def test_run_export_mistakes_are_one_line(
    api: Api,
    engine: FakeEngine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    run_id = "bad-" + engine.engine_id.split("/")[0]
    await fill_run(engine, run_id, T0, 2)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    argv = ["run", "export", *[run_id if a == "RUN" else a for a in args], "--database", db_url]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"setpoint-aggregator: error: {message}\n"
    assert list(out.iterdir()) == []
