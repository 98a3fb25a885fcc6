"""Issue 16 items 4 and 7: the batch report of a run, as HTML and as PDF (read back with
pypdf): metadata, the method as run with its library approval, plots, and every signature's
manifestation (printed name, UTC time, meaning); a released run says by whom."""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from tests.aggregator.helpers import UOD, until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.api.regulated_helpers import add_signers, approved_method, sign

TEXT = "Base: min\nInlet: VA01\nMark: loaded"
PLOTTED = UOD.model_copy(
    update={
        "plot": p.PlotConfiguration(
            subplots=[p.SubPlot(axes=[p.PlotAxis(label="Flow", tags=["FT01"])])]
        )
    }
)


@pytest.fixture
def signers(api: Api, password_hash: str) -> Api:
    return add_signers(api, password_hash)


async def _released_run(api: Api, engine: FakeEngine) -> dict[str, Any]:
    await approved_method(api, TEXT, name="Load column")
    started = time.time() - 60
    await engine.run_started("run-rep", started, api.names["operator"])
    lines = [(f"l{i}", line) for i, line in enumerate(TEXT.split("\n"))]
    await engine.method(1, lines)
    for i in range(20):
        await engine.tags("run-rep", started + i, FT01=float(i), PT01=0.1 * i)
    await engine.run_stopped("run-rep", started + 30)
    storage = api.agg.ctx.storage
    await until(lambda: getattr(storage.run_by_id("run-rep"), "stopped", None), 5, "run stopped")
    status, released = await sign(api, "admin", "run", "run-rep", "released")
    assert status == 201, released
    assert isinstance(released, dict)
    return released


async def test_report_pdf_carries_the_manifestations(signers: Api) -> None:
    from pypdf import PdfReader

    api = signers
    engine = await api.engine(uod=PLOTTED)
    try:
        released = await _released_run(api, engine)
        async with api.http.get(
            f"{api.url}/api/runs/run-rep/report.pdf", headers=api.auth("viewer")
        ) as response:
            assert response.status == 200
            assert response.content_type == "application/pdf"
            data = await response.read()
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
        flat = " ".join(text.split())
        assert "RELEASED by Ada Admin" in flat
        assert "Ada Admin" in flat and "released" in flat and released["time_utc"] in flat
        # the method's approval, with its signers' manifestations
        assert "Library method Load column version 1" in flat
        assert "Petra Approver" in flat and "approved" in flat
        assert "Flow: FT01" in flat  # a plot of the UOD's plotted tags
        assert "Base: min" in flat

        status, html = await api.call("GET", "/api/runs/run-rep/report", "viewer")
        assert status == 200 and isinstance(html, str)
        assert "RELEASED by Ada Admin" in html and "<svg" in html
        assert released["time_utc"] in html and "Petra Approver" in html
    finally:
        await engine.aclose()


async def test_unreleased_report_says_so(signers: Api, engine: FakeEngine) -> None:
    api = signers
    await engine.run_started("run-open", time.time(), api.names["operator"])
    storage = api.agg.ctx.storage
    await until(lambda: storage.run_by_id("run-open") is not None, 5, "run stored")
    status, html = await api.call("GET", "/api/runs/run-open/report", "viewer")
    assert status == 200 and "NOT RELEASED" in str(html)
    status, _ = await api.call("GET", f"/api/runs/{quote('nope')}/report.pdf", "viewer")
    assert status == 404


async def test_clock_offsets_are_kept_per_run_and_reported(
    signers: Api, engine: FakeEngine
) -> None:
    api = signers
    storage = api.agg.ctx.storage
    await engine.run_started("run-clock", time.time(), api.names["operator"])
    live = api.agg.ctx.live.engines[engine.engine_id]
    await until(lambda: live.run_id == "run-clock" and storage.run_by_id("run-clock"), 5, "run")

    def offsets() -> list[tuple[str, float]]:
        with storage.engine.connect() as conn:
            rows = conn.execute(sa.text('SELECT source, "offset" FROM run_clock_offset')).all()
        return [(str(r[0]), float(r[1])) for r in rows]

    await engine.send(p.Heartbeat(seq=engine.seq, time=time.time() - 3.0))
    await until(lambda: len(offsets()) == 1, 5, "first offset stored")
    await engine.send(p.Heartbeat(seq=engine.seq, time=time.time() - 3.01))  # within MOVE
    await engine.send(p.Heartbeat(seq=engine.seq, time=time.time() + 2.0))  # stepped
    await until(lambda: len(offsets()) == 2, 5, "moved offset stored")
    (s1, o1), (s2, o2) = offsets()
    assert (s1, s2) == ("heartbeat", "heartbeat")
    assert 2.9 < o1 < 3.5 and -2.1 < o2 < -1.5
    status, html = await api.call("GET", "/api/runs/run-clock/report", "viewer")
    assert status == 200 and "Engine clock offset" in str(html) and "+3.0" in str(html)
