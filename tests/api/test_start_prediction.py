"""The prediction made at Start, its rules (issue 18 item 4): made when a run starts, kept with
the run even when none could be made (with the reason), once per run, and not made for a run
first seen long after its start (an aggregator restarted mid-run)."""

from __future__ import annotations

import time

import protocol as p
from aggregator.api.predictions import LATE_START, PREDICTIONS_KEY
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine


async def test_a_start_keeps_a_failed_prediction_with_its_reason(
    api: Api, engine: FakeEngine
) -> None:
    keeper = api.agg.app[PREDICTIONS_KEY]
    run_id = "run-" + engine.engine_id[-6:]
    status, body = await api.call("GET", f"/api/runs/{run_id}/prediction", "viewer")
    assert status == 404, body
    await engine.run_started(run_id, time.time())
    await keeper.wait_idle()
    status, body = await api.call("GET", f"/api/runs/{run_id}/prediction", "viewer")
    assert status == 200, body
    assert body["status"] == "failed" and body["prediction"] is None
    assert body["reason"] == "the fake engine has no process model"
    runs = [r for r in engine.model_requests if isinstance(r, p.RunModel)]
    assert runs == engine.model_requests
    assert len([r for r in runs if r.text is None]) == 1  # its current method


async def test_a_run_seen_long_after_its_start_gets_none(api: Api, engine: FakeEngine) -> None:
    keeper = api.agg.app[PREDICTIONS_KEY]
    run_id = "old-" + engine.engine_id[-6:]
    await engine.run_started(run_id, time.time() - LATE_START - 60)
    await keeper.wait_idle()
    assert engine.model_requests == []
    status, body = await api.call("GET", f"/api/runs/{run_id}/prediction", "viewer")
    assert status == 404 and "no prediction stored" in str(body), body
