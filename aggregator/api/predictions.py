"""The prediction made at Start (issue 18): when a unit's run starts, run_model on the unit's
method at that moment, and keep the final result with the run.

Why it watches the unit list rather than the Start action: a run may also be started at the
unit itself (its console, a method's own restart), and RunStarted is what every start has in
common. The prediction runs in the background after the start was accepted, so a Start never
waits for it; it is bounded (one per unit at a time, PREDICT_TIMEOUT of wall time, the
engine's own limit of simulated time) and a failure is stored as such, with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.roles import ApiUser
from aggregator.api.service import ctx_of, require_run, state_of
from aggregator.api.simulate_api import ModelFailed, Prediction, model_watch
from aggregator.live import no_tag_values
from aggregator.store.predictions import RunPredictions, StoredPrediction

log = logging.getLogger(__name__)

PREDICT_TIMEOUT = 300.0
"""Wall seconds a prediction at Start may take (queueing behind other simulations included)."""
STORED_WAIT = 30.0
"""Wall seconds to wait for the started run to be stored before the prediction is kept."""
LATE_START = 60.0
"""A run whose RunStarted is this many seconds old when seen (this aggregator restarted mid-run,
or the engine sends a backlog) gets no prediction: one made now would not be the one made at
Start. Its time is the engine's clock, normally within a second of ours."""
PREDICTOR = ApiUser(id=0, name="setpoint (prediction at Start)", role="admin")
PREDICTIONS_KEY: web.AppKey[StartPredictions] = web.AppKey("setpoint_start_predictions")


class StartPredictions:
    """Starts one prediction per new run seen in the unit list, and keeps its outcome."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        ctx = ctx_of(app)
        self.store = RunPredictions(ctx.storage.engine, time.time)
        self._seen: dict[str, str | None] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __call__(self, topic: str, data: Any) -> None:
        if topic != "units" or not isinstance(data, dict):
            return
        unit, run_id = data.get("id"), data.get("run_id")
        if not isinstance(unit, str):
            return
        previous = self._seen.get(unit)
        self._seen[unit] = run_id if isinstance(run_id, str) else None
        if not isinstance(run_id, str) or run_id == previous or not data.get("online"):
            return
        if state_of(self.app).commands.connection(unit) is None:
            return  # held by another node of the site, which predicts it
        live = ctx_of(self.app).live.engines.get(unit)
        if live is None or time.time() - live.run_changed_at > LATE_START:
            return
        running = self._tasks.pop(unit, None)
        if running is not None:
            running.cancel()  # the unit started again: that run's prediction is moot
        task = asyncio.get_running_loop().create_task(self._predict(unit, run_id))
        self._tasks[unit] = task
        task.add_done_callback(lambda done: self._finished(unit, done))

    def _finished(self, unit: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(unit) is task:
            del self._tasks[unit]

    async def _predict(self, unit: str, run_id: str) -> None:
        ctx = ctx_of(self.app)
        run = await ctx.read(ctx.storage.run_by_id, run_id)  # usually not stored yet
        if run is not None and await ctx.read(self.store.exists, run.pk):
            return
        status, reason, result = "finished", "", {}
        try:
            async with asyncio.timeout(PREDICT_TIMEOUT):
                result = await model_watch(self.app).run(
                    self.app, PREDICTOR, unit, None, None, None, lambda s, d: None
                )
        except ModelFailed as exc:
            status, reason = "failed", exc.reason
        except TimeoutError:
            status, reason = "failed", f"the simulation took over {PREDICT_TIMEOUT:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the unit's engine refused or is gone: keep why
            status, reason = "failed", str(getattr(exc, "error", None) or exc)
        await self._keep(run_id, status, reason, result)

    async def _keep(self, run_id: str, status: str, reason: str, result: dict[str, Any]) -> None:
        ctx = ctx_of(self.app)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORED_WAIT
        while (run := await ctx.read(ctx.storage.run_by_id, run_id)) is None:
            if loop.time() > deadline:
                log.warning("run %s never stored; its prediction is dropped", run_id)
                return
            await asyncio.sleep(0.2)  # polling the database; the run is usually already there
        kept = await ctx.read(self.store.save, run.pk, status, reason, result)
        log.info("prediction at Start of run %s: %s %s (kept: %s)", run_id, status, reason, kept)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_idle(self) -> None:
        """Tests: until every prediction started so far is kept."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)


class RunPredictionOut(BaseModel):
    run_id: str
    requested: float = Field(description="when the prediction was kept (aggregator clock)")
    status: Literal["finished", "failed"]
    reason: str = Field(description="why there is no prediction (status failed)")
    prediction: Prediction | None = Field(description="run_model's final result")


def stored_json(stored: StoredPrediction, run_id: str) -> RunPredictionOut:
    finished = stored.status == "finished"
    return RunPredictionOut(
        run_id=run_id,
        requested=stored.requested,
        status="finished" if finished else "failed",
        reason=stored.reason,
        prediction=Prediction.model_validate(stored.result) if finished else None,
    )


async def run_prediction(call: Call[None, None]) -> RunPredictionOut:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    stored = await ctx.read(call.app[PREDICTIONS_KEY].store.of_run, run.pk)
    if stored is None:
        raise ApiError(404, f"no prediction stored for run {run.run_id!r} (yet)")
    return stored_json(stored, run.run_id)


def setup(app: web.Application, routes: ApiRoutes) -> None:
    keeper = StartPredictions(app)
    app[PREDICTIONS_KEY] = keeper
    ctx_of(app).hub.subscribe(keeper, no_tag_values)

    async def _close(_: web.Application) -> None:
        await keeper.close()

    app.on_shutdown.append(_close)
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs/{run_id}/prediction",
            "The prediction made when the run started (run_model on its method)",
            "viewer",
            response=RunPredictionOut,
            errors=(403, 404),
            tags=("runs",),
            description="Made in the background after the Start was accepted; 404 until it is "
            "kept. status failed: none could be made (reason), e.g. the unit has no process "
            "model.",
        ),
        run_prediction,
    )
