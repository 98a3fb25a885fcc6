"""GET /api/units: every engine the aggregator has seen, with its live state."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from aggregator.api.common import respond
from aggregator.context import CONTEXT_KEY


class Unit(BaseModel):
    id: str
    name: str
    computer_name: str
    online: bool
    state: str
    run_id: str | None
    block: str
    run_time: float
    method_status: str
    uod_hash: str
    last_seen: float


UNITS = TypeAdapter(list[Unit])


async def list_units(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    rows = await ctx.read(ctx.storage.list_engines)
    units: list[Unit] = []
    for row in rows:
        live = ctx.live.engines.get(row["id"])
        summary: dict[str, Any] = live.summary() if live is not None else {}
        online = bool(summary.get("online", False))
        units.append(
            Unit(
                id=row["id"],
                name=row["uod_name"] or row["id"],
                computer_name=row["computer_name"],
                online=online,
                state=str(summary.get("state", "Stopped")) if online else "Offline",
                run_id=summary.get("run_id")
                if live is not None and live.run_id
                else row["open_run_id"],
                block=str(summary.get("block", "")),
                run_time=float(summary.get("run_time", 0.0)),
                method_status=str(summary.get("method_status", "OK")),
                uod_hash=row["uod_hash"],
                last_seen=max(row["last_seen"], live.last_seen if live else 0.0),
            )
        )
    return web.Response(body=UNITS.dump_json(units), content_type="application/json")


def setup(app: web.Application) -> None:
    # GET /api/units is served by units_api (UnitSummary of docs/api.md, filtered by role)
    del app


__all__ = ["Unit", "respond", "setup"]
