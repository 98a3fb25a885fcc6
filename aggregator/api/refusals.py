"""The audit record of a refusal, for HTTP (the registry's `on_refusal`) and /ws alike.

An entry names who asked (the user, or the name tried at login), the action, the unit or other
target, and the reason: `new = {"result": <the refusal's one line>, "status": <HTTP status>,
"target": {...}}`, so a refused action reads like an accepted one whose result is not "ok".
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import JsonValue

from aggregator.api.errors import ApiError
from aggregator.api.openapi import RAW_BODY_KEY, Operation
from aggregator.api.roles import ApiUser
from aggregator.api.service import record

ANONYMOUS = "(anonymous)"
_TARGET_FIELDS = ("name", "username", "unit", "run_id", "topic")


async def record_refusal(
    app: web.Application,
    user: ApiUser | str | None,
    action: str,
    error: ApiError,
    *,
    unit_id: str | None = None,
    target: dict[str, JsonValue] | None = None,
    via: str = "http",
) -> None:
    """Leaves the entry once: marks `error` audited."""
    error.audited = True
    new: dict[str, JsonValue] = {"result": error.error, "status": error.status, "via": via}
    if target:
        new["target"] = target
    # a refused user is not a contributor of the run: the run is named in the target only
    name = user.name if isinstance(user, ApiUser) else (user or ANONYMOUS)
    await record(app, name, action, unit_id=unit_id, new=new)


async def _body(request: web.Request) -> Any:
    """The JSON body as parsed by the registry, or (refused before it got there) as sent."""
    if RAW_BODY_KEY in request:
        return request[RAW_BODY_KEY]
    if not request.can_read_body:
        return None
    try:
        return json.loads(await request.read())
    except (ValueError, RecursionError, web.HTTPException):
        return None


async def _target(request: web.Request) -> dict[str, JsonValue]:
    target: dict[str, JsonValue] = {k: v for k, v in request.match_info.items() if k != "tail"}
    body = await _body(request)
    if isinstance(body, dict):
        for key in _TARGET_FIELDS:
            value = body.get(key)
            if isinstance(value, str) and key not in target:
                target[key] = value[:256]
    return target


async def audit_refusal(
    op: Operation, request: web.Request, user: ApiUser | None, error: ApiError
) -> None:
    target = await _target(request)
    unit_id = target.pop("unit_id", None)
    await record_refusal(
        request.app,
        user,
        op.audit_name,
        error,
        unit_id=unit_id if isinstance(unit_id, str) else None,
        target=target,
    )
