"""The things a person can make a unit do, shared by HTTP and /ws: each checks the role and the
unit, sends the protocol request, waits for the engine's answer and leaves an audit record
whether the engine accepted or refused."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from pydantic import JsonValue, ValidationError

from aggregator.api import approval
from aggregator.api.errors import ApiError
from aggregator.api.method_edit import send_edit
from aggregator.api.roles import ApiUser
from aggregator.api.schemas import CommandOutcome, Findings, MethodSaved
from aggregator.api.service import (
    EngineRefusal,
    ctx_of,
    current_method,
    engine_request,
    record,
    require_control,
    require_unit,
    state_of,
    unit_summary,
)
from aggregator.live import LiveEngine, no_tag_values
from protocol import (
    MAX_FINDINGS,
    CancelLine,
    ControlAction,
    ControlCommand,
    Finding,
    ForceLine,
    InvokeCommand,
    SetMethod,
    bounded_findings,
)

_STALE_VERSION = re.compile(r"method version is (\d+)")
"""Only for engines older than the machine-readable SetMethod result (data {"current_version"}):
they said so in the error text alone."""


def _stale_version(problem: ApiError) -> int | None:
    """The engine's current method version when it refused a SetMethod as stale, else None."""
    data = problem.data if isinstance(problem, EngineRefusal) else None
    if isinstance(data, dict):
        current = data.get("current_version")
        return current if isinstance(current, int) else None
    stale = _STALE_VERSION.search(problem.error)  # fallback: older engines, text only
    return int(stale.group(1)) if stale is not None else None


@contextlib.asynccontextmanager
async def audited(
    app: web.Application,
    user: ApiUser,
    action: str,
    unit_id: str,
    run_id: Callable[[], str | None],
    new: dict[str, JsonValue],
    old: JsonValue = None,
) -> AsyncIterator[dict[str, JsonValue]]:
    """Leave the audit record of an action whether the engine accepted or refused it.

    Yields `new`, which the action may complete (e.g. with the saved version); `result` is
    added: "ok", or the refusal's message. `run_id` is read when the action is over, so a Start
    is recorded against the run it started."""
    outcome = "ok"
    try:
        yield new
    except ApiError as problem:
        outcome = problem.error
        problem.audited = True  # recorded below
        raise
    finally:
        await record(
            app,
            user,
            action,
            unit_id=unit_id,
            run_id=run_id(),
            old=old,
            new={**new, "result": outcome},
        )


async def control(
    app: web.Application, user: ApiUser, unit_id: str, action: ControlAction
) -> CommandOutcome:
    live = require_control(app, user, unit_id)
    before = unit_summary(app, live)
    async with audited(
        app,
        user,
        "control",
        unit_id,
        lambda: live.run_id or before.run_id,
        {"action": action.value},
        old={"state": before.state},
    ):
        if action in (ControlAction.START, ControlAction.RESTART):
            problem = await approval.start_problem(app, unit_id)
            if problem is not None:
                raise ApiError(409, problem)
        result = await engine_request(
            app, unit_id, lambda cid: ControlCommand(id=cid, user=user.name, command=action)
        )
        if action is ControlAction.START:
            await _run_stored(app, live, before.run_id)
    return CommandOutcome(data=result.data)


START_RECORD_WAIT = 2.0
"""Seconds a Start waits for its run to be stored (engines send RunStarted within milliseconds;
one replaying a long backlog may not, and the Start is then recorded without its run)."""


async def _run_stored(app: web.Application, live: LiveEngine, previous: str | None) -> None:
    """Wait (a few seconds at most) until the run a Start began is stored, so the Start's audit
    entry names it and the starter becomes its contributor: the engine answers the Start before
    its RunStarted has arrived here, let alone been committed. Each change of the unit list
    (the RunStarted received, then committed) triggers one look in the database."""
    ctx = ctx_of(app)
    stored = asyncio.Event()
    looks: set[asyncio.Task[None]] = set()

    async def look(run_id: str) -> None:
        if await ctx.read(ctx.storage.run_by_id, run_id) is not None:
            stored.set()

    def changed(topic: str, _: Any) -> None:
        run_id = live.run_id
        if topic == "units" and run_id is not None and run_id != previous:
            task = asyncio.ensure_future(look(run_id))
            looks.add(task)
            task.add_done_callback(looks.discard)

    unsubscribe = ctx.hub.subscribe(changed, no_tag_values)
    try:
        changed("units", None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                stored.wait(), min(state_of(app).command_timeout, START_RECORD_WAIT)
            )
    finally:
        unsubscribe()
        for task in looks:
            task.cancel()


async def inject(app: web.Application, user: ApiUser, unit_id: str, pcode: str) -> CommandOutcome:
    live = require_control(app, user, unit_id)
    async with audited(app, user, "inject", unit_id, lambda: live.run_id, {"pcode": pcode}):
        result = await engine_request(
            app, unit_id, lambda cid: InvokeCommand(id=cid, user=user.name, pcode=pcode)
        )
    return CommandOutcome(data=result.data)


async def line_action(
    app: web.Application, user: ApiUser, unit_id: str, line_id: str, kind: str
) -> CommandOutcome:
    live = require_control(app, user, unit_id)
    request = CancelLine if kind == "cancel" else ForceLine
    async with audited(app, user, kind, unit_id, lambda: live.run_id, {"line": line_id}):
        result = await engine_request(
            app, unit_id, lambda cid: request(id=cid, user=user.name, run_log_id=line_id)
        )
    return CommandOutcome(data=result.data)


def _findings(data: JsonValue) -> Findings:
    """The engine's findings, at most MAX_FINDINGS (an engine before protocol 1.1 sends them
    all), with the count of the rest: the engine's own plus those cut here."""
    raw = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return Findings(findings=[])
    reported = data.get("findings_omitted") if isinstance(data, dict) else None
    found: list[Finding] = []
    for item in raw[:MAX_FINDINGS]:
        try:
            found.append(Finding.model_validate(item))
        except ValidationError:
            continue
    kept, _ = bounded_findings(found)
    omitted = max(0, len(raw) - MAX_FINDINGS)
    omitted += reported if isinstance(reported, int) and reported > 0 else 0
    return Findings(findings=kept, findings_omitted=omitted)


async def check_method(app: web.Application, user: ApiUser, unit_id: str, text: str) -> Findings:
    """The engine's analyzer on a text, nothing saved (SetMethod with dry_run)."""
    require_unit(app, user, unit_id)
    view = await current_method(app, unit_id)
    version = view.version if view is not None else 0
    result = await engine_request(
        app,
        unit_id,
        lambda cid: SetMethod(
            id=cid, user=user.name, text=text, expected_version=version, dry_run=True
        ),
    )
    return _findings(result.data)


class MethodRefused(ApiError):
    """422 carrying the analyzer's findings, so the editor can underline them."""

    def __init__(self, error: str, found: Findings) -> None:
        super().__init__(422, error, "text", found.model_dump(mode="json"))


async def set_method(
    app: web.Application,
    user: ApiUser,
    unit_id: str,
    text: str,
    expected_version: int,
    line_ids: list[str | None] | None = None,
    source: dict[str, JsonValue] | None = None,
) -> MethodSaved:
    """`source`: the library version being loaded (recorded in the audit entry)."""
    live = require_control(app, user, unit_id)
    before = await current_method(app, unit_id)
    if before is not None and before.version != expected_version:
        raise ApiError(
            409,
            f"the method is at version {before.version}, not {expected_version}: "
            "someone else saved it; reload and merge",
            "expected_version",
        )
    if line_ids is not None and len(line_ids) != len(text.split("\n")):
        raise ApiError(422, "line_ids must have one entry per line of text", "line_ids")
    version: int | None = None
    async with audited(
        app,
        user,
        "method",
        unit_id,
        lambda: live.run_id,
        {"version": None, "text": text, **({"source": source} if source else {})},
        old=None if before is None else {"version": before.version, "text": before.text},
    ) as entry:
        refusal = approval.edit_problem(app, live)
        if refusal is not None:
            raise ApiError(409, refusal)
        try:
            result = await send_edit(app, user, unit_id, text, expected_version, line_ids)
        except ApiError as problem:
            current = _stale_version(problem) if problem.status == 409 else None
            if current is not None:
                raise ApiError(
                    409,
                    f"{problem.error} (the method is at version {current}, not "
                    f"{expected_version}: reload and merge)",
                    "expected_version",
                ) from None
            if problem.status == 409:
                # refused for its content: let the analyzer say where
                try:
                    found = await check_method(app, user, unit_id, text)
                except ApiError:
                    found = Findings(findings=[])
                raise MethodRefused(problem.error, found) from None
            raise
        data = result.data
        reported = data.get("version") if isinstance(data, dict) else None
        version = reported if isinstance(reported, int) else expected_version + 1
        entry["version"] = version
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        found = _findings(data)  # the engine said them
    else:
        try:
            found = await check_method(app, user, unit_id, text)  # older engines: ask
        except ApiError:
            found = Findings(findings=[])
    return MethodSaved(
        version=version, findings=found.findings, findings_omitted=found.findings_omitted
    )
