"""run_model: a unit's method simulated on the unit's process model, faster than real time.

The engine runs the simulation in a child process and reports it in ModelProgress frames
(protocol 1.3, protocol/model_run.py), which the engine endpoint publishes on the live hub as
`unit/<id>/model_progress`. `ModelWatch` routes them to whoever asked: the /ws action
`run_model` (a task stream: pending while the engine has another simulation running, working
with progress and intermediate results, then finished, exception or interrupted) and
`POST /api/units/{id}/simulate`, which waits for the final result. Viewers may simulate:
nothing on the unit changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, JsonValue

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.roles import ApiUser
from aggregator.api.schemas import Request
from aggregator.api.service import (
    ctx_of,
    engine_request,
    require_engine_protocol,
    require_unit,
    state_of,
)
from aggregator.live import no_tag_values
from aggregator.ws.handler import ActionFailed
from aggregator.ws.messages import RunModelAction
from aggregator.ws.tasks import Task
from protocol import CancelModel, ModelProgress, RunModel

log = logging.getLogger(__name__)

MODEL_SINCE = (1, 3)
"""The protocol version that brought RunModel: an older engine would never answer it."""
SILENCE_CHECK = 1.0  # s between checks that the engine is still connected
TERMINAL = frozenset({"finished", "exception", "interrupted"})
MODEL_WATCH_KEY: web.AppKey[ModelWatch] = web.AppKey("setpoint_model_watch")

Progress = Callable[[str, dict[str, Any]], None]


class ModelFailed(Exception):
    """The simulation ended as an exception; `data` holds the reason and any findings."""

    def __init__(self, reason: str, data: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


@dataclass
class _Simulation:
    unit: str
    queue: asyncio.Queue[ModelProgress] = field(default_factory=asyncio.Queue)
    working: bool = False


class ModelWatch:
    """The simulations this aggregator asked for, by the id their RunModel carried."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Simulation] = {}
        self._cancels: set[asyncio.Task[Any]] = set()

    def __call__(self, topic: str, data: Any) -> None:
        if isinstance(data, ModelProgress) and topic.endswith("/model_progress"):
            sim = self._by_id.get(data.model_id)
            if sim is not None:
                sim.working = sim.working or data.status == "working"
                sim.queue.put_nowait(data)

    def status(self, unit_id: str) -> dict[str, JsonValue]:
        """For the unit's `status`: how many simulations run and wait."""
        sims = [s for s in self._by_id.values() if s.unit == unit_id]
        return {
            "running": sum(1 for s in sims if s.working),
            "pending": sum(1 for s in sims if not s.working),
        }

    async def run(
        self,
        app: web.Application,
        user: ApiUser,
        unit_id: str,
        text: str | None,
        speed: float | None,
        duration: float | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Asks the engine and relays its progress; the final result, or ModelFailed."""
        require_unit(app, user, unit_id)
        await _check_version(app, unit_id)
        sim = _Simulation(unit_id)
        ids: list[str] = []

        def build(correlation: str) -> RunModel:
            ids.append(correlation)
            self._by_id[correlation] = sim  # before it is sent: pending may beat the answer
            return RunModel(
                id=correlation, user=user.name, text=text, speed=speed, duration=duration
            )

        try:
            await engine_request(app, unit_id, build)
            return await self._follow(app, unit_id, sim, progress)
        except asyncio.CancelledError:
            if ids:
                self._cancel(app, user, unit_id, ids[0])
            raise
        finally:
            for correlation in ids:
                self._by_id.pop(correlation, None)

    async def _follow(
        self, app: web.Application, unit_id: str, sim: _Simulation, progress: Progress
    ) -> dict[str, Any]:
        commands = state_of(app).commands
        while True:
            try:
                async with asyncio.timeout(SILENCE_CHECK):
                    message = await sim.queue.get()
            except TimeoutError:
                if commands.connection(unit_id) is None:
                    raise ModelFailed(
                        "the unit's engine disconnected; the simulation is lost",
                        {"reason": "disconnected"},
                    ) from None
                continue
            data = message.data if isinstance(message.data, dict) else {}
            if message.status in TERMINAL:
                if message.status == "finished":
                    final = data.get("final")
                    return final if isinstance(final, dict) else {}
                reason = str(data.get("reason") or message.status)
                raise ModelFailed(reason, dict(data))
            progress(message.status, dict(data))

    def _cancel(self, app: web.Application, user: ApiUser, unit_id: str, model_id: str) -> None:
        async def cancel() -> None:
            with contextlib.suppress(Exception):
                await engine_request(
                    app, unit_id, lambda cid: CancelModel(id=cid, user=user.name, model_id=model_id)
                )

        task = asyncio.get_running_loop().create_task(cancel())
        self._cancels.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._cancels.discard)


async def _check_version(app: web.Application, unit_id: str) -> None:
    await require_engine_protocol(
        app, unit_id, MODEL_SINCE, "run_model needs 1.3 or later: upgrade the engine"
    )


def model_watch(app: web.Application) -> ModelWatch:
    return app[MODEL_WATCH_KEY]


def speed_factor(speed: Literal["max"] | float) -> float | None:
    return None if speed == "max" else float(speed)


# ---- HTTP -------------------------------------------------------------------------------------


class SimulateRequest(Request):
    method: str | None = Field(
        default=None, max_length=1_000_000, description="the method; absent: the current one"
    )
    speed: Literal["max"] | float = Field(
        default="max", description="'max', or simulated seconds per real second (> 0)"
    )
    for_: float | None = Field(
        default=None,
        alias="for",
        gt=0,
        le=30 * 86400,
        description="stop after this many simulated seconds (default: when the method stops)",
    )


class Prediction(BaseModel):
    """What run_model predicts (docs/api.md, run_model)."""

    duration: float = Field(description="simulated seconds from Start to the end")
    end_state: str = Field(description="Stopped, or the state when `for` ran out")
    marks: list[dict[str, JsonValue]] = Field(description="[{run_time, text}]")
    watches: list[dict[str, JsonValue]] = Field(description="Watch/Alarm lines that fired")
    alarms: list[dict[str, JsonValue]] = Field(description="managed alarms that became active")
    tags: dict[str, dict[str, JsonValue]] = Field(description="plotted tag -> {min, max, last}")
    trace: dict[str, dict[str, JsonValue]] = Field(
        description="plotted tag -> {run_time: [...], v: [...]}, at most 1000 points each"
    )
    findings: list[JsonValue] = Field(default_factory=list)


async def simulate(call: Call[SimulateRequest, None]) -> Prediction:
    body = call.body
    if not isinstance(body.speed, str) and not body.speed > 0:
        raise ApiError(400, "speed must be 'max' or a number > 0", field="speed")
    try:
        final = await model_watch(call.app).run(
            call.app,
            call.need_user(),
            call.path("unit_id"),
            body.method,
            speed_factor(body.speed),
            body.for_,
            lambda status, data: None,
        )
    except ModelFailed as exc:
        extra = {k: v for k, v in exc.data.items() if k in ("findings", "findings_omitted")}
        raise ApiError(422, f"the simulation failed: {exc.reason}", extra=extra) from None
    return Prediction.model_validate(final)


def setup(app: web.Application, routes: ApiRoutes) -> None:
    watch = ModelWatch()
    app[MODEL_WATCH_KEY] = watch
    ctx_of(app).hub.subscribe(watch, no_tag_values)
    operation = Operation(
        "POST",
        "/api/units/{unit_id}/simulate",
        "Simulate a method on the unit's process model (run_model) and return the prediction",
        "viewer",
        body=SimulateRequest,
        response=Prediction,
        errors=(400, 403, 404, 409, 422, 503),
        tags=("units",),
        description="Nothing on the unit changes. The engine runs one simulation at a time; "
        "this call waits for its turn and its end. 422: the method has errors (`findings`) or "
        "the model failed. The /ws action `run_model` streams progress.",
        action="simulate",
    )
    routes.add_all(app, [(operation, simulate)])


# ---- /ws --------------------------------------------------------------------------------------


async def ws_run_model(
    app: web.Application,
    user: ApiUser,
    action: RunModelAction,
    task: Task,
    report: Callable[[], None],
    now: Callable[[], float],
) -> JsonValue:
    """The /ws task: pending while queued at the engine, working with the engine's progress
    and intermediate results, finished with the prediction as `final`. An exception's message
    is the reason; its findings (a method with errors) are in `final`."""

    def progress(status: str, data: dict[str, Any]) -> None:
        if status == "pending":
            ahead = data.get("position")
            task.message = f"waiting for the engine's simulation ({ahead} ahead)"
        else:
            value = data.get("progress")
            task.step(
                now(),
                progress=float(value) if isinstance(value, int | float) else None,
                intermediate=data.get("intermediate"),
                message="simulating",
            )
        report()

    try:
        final = await model_watch(app).run(
            app, user, action.unit, action.method, speed_factor(action.speed), action.for_, progress
        )
    except ModelFailed as exc:
        task.final = {"reason": exc.reason, **exc.data}
        raise ActionFailed(exc.reason) from None
    task.message = f"predicted duration {final.get('duration')} s ({final.get('end_state')})"
    return final
