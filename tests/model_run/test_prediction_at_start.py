"""The prediction made at Start (issue 18 item 4): a real aggregator starts run_model on the
unit's method when a run starts, keeps the final result with the run, and serves it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.examples.test_with_aggregator import _get, _wait
from tests.model_run.conftest import Live

pytestmark = pytest.mark.slow

MARKS = ["Buffer A", "Load", "Buffer A", "Elution", "Peak", "Done"]


def _control(live: Live, action: str) -> tuple[int, float]:
    request = urllib.request.Request(
        f"{live.http}/api/units/{urllib.parse.quote(live.unit, safe='')}/control",
        data=json.dumps({"action": action}).encode(),
        headers={"Authorization": f"Bearer {live.bearer}", "content-type": "application/json"},
    )
    sent = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, time.monotonic() - sent


def _simulate(live: Live) -> dict[str, Any]:
    """The unit's current method simulated now, for comparison."""
    request = urllib.request.Request(
        f"{live.http}/api/units/{urllib.parse.quote(live.unit, safe='')}/simulate",
        data=b"{}",
        headers={"Authorization": f"Bearer {live.bearer}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        found: dict[str, Any] = json.load(response)
    return found


def _prediction(live: Live, run_id: str) -> tuple[int, Any]:
    try:
        return 200, _get(f"{live.http}/api/runs/{run_id}/prediction", live.bearer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_start_stores_the_prediction_and_get_returns_it(live: Live) -> None:
    status, took = _control(live, "Start")
    assert status == 200
    assert took < 5.0  # the Start does not wait for a simulation of about an hour
    unit = f"{live.http}/api/units/{urllib.parse.quote(live.unit, safe='')}"
    run_id = _wait(lambda: _get(unit, live.bearer)["run_id"])
    try:
        code, early = _prediction(live, run_id)
        if code == 404:
            assert "no prediction stored" in early["error"]
        found = _wait(lambda: (c := _prediction(live, run_id))[0] == 200 and c[1], timeout=60)
    finally:
        _control(live, "Stop")
    assert found["run_id"] == run_id and found["status"] == "finished", found
    predicted = found["prediction"]
    assert predicted["end_state"] == "Stopped"
    assert predicted["duration"] == pytest.approx(_simulate(live)["duration"], abs=1.0)
    assert [m["text"] for m in predicted["marks"]] == MARKS
    assert set(predicted["trace"]) == {"UV01", "CT01", "FT01", "PT01"}
    for series in predicted["trace"].values():
        assert 0 < len(series["run_time"]) == len(series["v"]) <= 1000
    # kept once: stopping (and the unit list changing again) does not replace it
    assert _prediction(live, run_id) == (200, found)
    # the batch report sets it beside the run: predicted duration and marks vs actual
    request = urllib.request.Request(
        f"{live.http}/api/runs/{run_id}/report",
        headers={"Authorization": f"Bearer {live.bearer}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        page = response.read().decode()
    assert "Prediction made at Start vs actual" in page
    assert f"{predicted['duration']:.1f} s" in page
    for mark in predicted["marks"]:
        assert f"Mark: {mark['text']}" in page
        assert f"{mark['run_time']:.1f} s" in page
    pdf = urllib.request.Request(
        f"{live.http}/api/runs/{run_id}/report.pdf", headers=request.headers
    )
    with urllib.request.urlopen(pdf, timeout=60) as response:
        assert response.read().startswith(b"%PDF")


def test_a_run_without_a_prediction_is_404_with_the_reason(live: Live) -> None:
    code, body = _prediction(live, "no-such-run")
    assert code == 404 and "no run" in body["error"]
