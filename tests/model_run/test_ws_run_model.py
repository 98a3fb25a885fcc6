"""run_model over a real /ws, a real aggregator and a real engine (issue 18 items 2, 5, 6)."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.model_run.conftest import Live, Ws

ROOT = Path(__file__).resolve().parents[2]
METHOD = (ROOT / "uod_examples" / "chromatography.pcode").read_text()
LONG = METHOD.replace("    Mark: Load\n    1 End block", "    Mark: Load\n    60 End block")

pytestmark = pytest.mark.slow


async def test_task_stream_order_and_fields(live: Live) -> None:
    ws = await Ws.open(live)
    try:
        await ws.send({"action": "run_model", "id": "m1", "unit": live.unit, "method": LONG})
        end = await ws.end("m1", timeout=60)
        frames = ws.of("m1")
        statuses = [f["status"] for f in frames]
        collapsed = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
        assert collapsed == ["pending", "working", "finished"], statuses
        progress = [f["data"]["progress"] for f in frames if f["status"] == "working"]
        assert progress[0] == 0.0 and progress == sorted(progress)
        working = [f for f in frames if f["status"] == "working"]
        stamps = [ws.stamps[ws.frames.index(f)] for f in working]
        assert max(b - a for a, b in itertools.pairwise(stamps)) < 1.0
        middle = working[-1]["data"]["intermediate"]
        assert set(middle) == {"run_time", "block", "marks", "watches"}
        final = end["data"]["final"]
        assert final["end_state"] == "Stopped"
        assert 3600 < final["duration"] < 4200
        assert [m["text"] for m in final["marks"]] == [
            "Buffer A",
            "Load",
            "Buffer A",
            "Elution",
            "Peak",
            "Done",
        ]
        assert final["watches"][0]["text"] == "Watch: UV01 > 500 mAU"
        assert set(final["tags"]["PT01"]) == {"min", "max", "last"}
        assert set(final["trace"]) == {"UV01", "CT01", "FT01", "PT01"}
        for series in final["trace"].values():
            assert 0 < len(series["run_time"]) == len(series["v"]) <= 1000
    finally:
        await ws.close()


async def test_cancel_interrupts_within_a_second(live: Live) -> None:
    ws = await Ws.open(live)
    try:
        await ws.send(
            {"action": "run_model", "id": "m2", "unit": live.unit, "method": LONG, "speed": 50}
        )
        await ws.until(lambda: any(f["status"] == "working" for f in ws.of("m2")))
        sent = time.monotonic()
        await ws.send({"action": "cancel", "id": "c1", "task": "m2"})
        end = await ws.end("m2", timeout=5)
        assert end["status"] == "interrupted"
        assert ws.stamps[ws.frames.index(end)] - sent < 1.0
        assert (await ws.end("c1"))["status"] == "finished"
        # the engine is free again: the next simulation starts at once
        await ws.send({"action": "run_model", "id": "m3", "unit": live.unit})
        assert (await ws.end("m3", timeout=60))["status"] == "finished"
    finally:
        await ws.close()


async def test_a_second_simulation_waits_as_pending(live: Live) -> None:
    ws = await Ws.open(live)
    try:
        slow = {"action": "run_model", "unit": live.unit, "method": LONG, "speed": 200}
        await ws.send({**slow, "id": "a"})
        await ws.until(lambda: any(f["status"] == "working" for f in ws.of("a")))
        await ws.send({"action": "run_model", "id": "b", "unit": live.unit})
        await ws.until(lambda: len(ws.of("b")) >= 2)
        assert [f["status"] for f in ws.of("b")][:2] == ["pending", "pending"]
        assert "1 ahead" in ws.of("b")[1]["message"]
        await ws.send({"action": "status", "id": "s", "unit": live.unit})
        status = await ws.end("s")
        assert status["data"]["final"]["model"] == {"running": 1, "pending": 1}
        await ws.send({"action": "cancel", "id": "c", "task": "a"})
        assert (await ws.end("a"))["status"] == "interrupted"
        b = await ws.end("b", timeout=60)
        assert b["status"] == "finished"
        first_working = next(f for f in ws.of("b") if f["status"] == "working")
        assert ws.frames.index(first_working) > ws.frames.index(await ws.end("a"))
    finally:
        await ws.close()


async def test_an_analyzer_error_is_an_exception_with_findings(live: Live) -> None:
    ws = await Ws.open(live)
    try:
        bad = "Inlet: VA01\nFlw: 60 L/h\nStop\n"
        await ws.send({"action": "run_model", "id": "e", "unit": live.unit, "method": bad})
        end = await ws.end("e")
        assert end["status"] == "exception"
        assert "line 2" in end["message"]
        findings = end["data"]["final"]["findings"]
        assert findings and findings[0]["line"] == 2 and findings[0]["severity"] == "error"
    finally:
        await ws.close()


def _post(live: Live, body: dict[str, object]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{live.http}/api/units/{urllib.parse.quote(live.unit, safe='')}/simulate",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {live.bearer}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_http_simulate_returns_the_prediction(live: Live) -> None:
    status, body = _post(live, {"method": METHOD})
    assert status == 200, body
    assert body["end_state"] == "Stopped" and body["marks"][-1]["text"] == "Done"
    status, body = _post(live, {"method": METHOD, "for": 30})
    assert status == 200 and body["duration"] == pytest.approx(30, abs=0.2)
    status, body = _post(live, {"method": "Flw: 1\n"})
    assert status == 422 and body["findings"], body
    status, body = _post(live, {"speed": 0})
    assert status == 400, body
