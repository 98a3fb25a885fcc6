"""Sending a method edit so that what the editor is told stays true (issue 13 item 7).

An edit is saved and reported saved, or not saved and reported not saved. The hard case is an
engine that answers too late: the aggregator has stopped waiting and told the editor so. Two
things keep that answer true:

- The SetMethod carries a deadline (protocol 1.1), half the time the aggregator waits, in the
  aggregator's clock; the engine translates it with the clock offset it was given at
  registration and refuses, unapplied, an edit that reaches it later. The other half is for the
  answer to travel back. So an edit the aggregator gave up on is normally never applied.
- Should an answer still come after the timeout (an engine older than 1.1 ignores the deadline,
  or a clock stepped), it is recognised by its correlation id: a saved edit gets its own audit
  entry and a line in the unit's error log naming the version, and the method view follows the
  engine's Method message as always. A late refusal changes nothing and is only logged.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from aggregator.api.commands import EngineOffline, EngineRefused, EngineTimeout
from aggregator.api.errors import ApiError
from aggregator.api.roles import ApiUser
from aggregator.api.service import EngineRefusal, ctx_of, record, state_of
from protocol import CommandResult, SetMethod

log = logging.getLogger(__name__)

DEADLINE_SHARE = 0.5
"""Share of the request timeout the engine has to apply an edit; the rest is for its answer."""

LATE_RESULT = "saved by the engine after the aggregator had stopped waiting"


async def send_edit(
    app: web.Application,
    user: ApiUser,
    unit_id: str,
    text: str,
    expected_version: int,
    line_ids: list[str | None] | None,
) -> CommandResult:
    """Send a (non dry-run) SetMethod with a deadline; failures map to the API's statuses."""
    state = state_of(app)
    ctx = ctx_of(app)
    timeout = state.command_timeout
    deadline = time.time() + timeout * DEADLINE_SHARE
    was_connected = ctx.connections.get(unit_id) is not None

    def build(cid: str) -> SetMethod:
        return SetMethod(
            id=cid,
            user=user.name,
            text=text,
            expected_version=expected_version,
            line_ids=line_ids,
            deadline=deadline,
        )

    async def late(result: CommandResult) -> None:
        await _late_answer(app, user, unit_id, text, expected_version, result)

    try:
        return await state.commands.request(unit_id, build, timeout=timeout, on_late=late)
    except EngineTimeout as exc:
        raise ApiError(
            503,
            f"{exc}: the edit was not saved (the engine refuses it after "
            f"{timeout * DEADLINE_SHARE:g} s); reload the method before editing again",
        ) from None
    except EngineOffline as exc:
        if not was_connected:
            raise ApiError(503, f"{exc}: the edit was not saved") from None
        raise ApiError(
            503,
            f"{exc} before answering: whether the edit was saved shows in the method when the "
            "unit reconnects; reload it then",
        ) from None
    except EngineRefused as exc:
        raise EngineRefusal(f"the engine refused: {exc.error}", exc.data) from None


async def _late_answer(
    app: web.Application,
    user: ApiUser,
    unit_id: str,
    text: str,
    expected_version: int,
    result: CommandResult,
) -> None:
    if not result.ok:
        log.info("unit %s refused a method edit that had timed out: %s", unit_id, result.error)
        return
    data = result.data
    reported = data.get("version") if isinstance(data, dict) else None
    version = reported if isinstance(reported, int) else expected_version + 1
    log.warning("unit %s saved a timed-out method edit as version %d", unit_id, version)
    ctx = ctx_of(app)
    live = ctx.live.engines.get(unit_id)
    note = (
        f"the method edit by {user.name} that timed out was {LATE_RESULT}, as version "
        f"{version}: the method shown is that version"
    )
    error = await ctx.writer.call(ctx.storage.note_error, unit_id, "warning", note)
    ctx.live.hub.publish(f"unit/{unit_id}/errors", {"entries": [error.as_json()]})
    await record(
        app,
        user,
        "method",
        unit_id=unit_id,
        run_id=None if live is None else live.run_id,
        old={"version": expected_version},
        new={"version": version, "text": text, "result": LATE_RESULT},
    )
