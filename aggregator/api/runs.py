"""GET /api/runs/{id}/csv (streamed export); the rest of /api/runs is runs_api."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from aggregator.api.common import ApiError, current_user
from aggregator.api.roles import may_see
from aggregator.context import CONTEXT_KEY
from protocol import ScalarValue, UodDescription


def _iso(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: ScalarValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def _check_roles(run: dict[str, Any], role: str, run_id: str) -> None:
    """The export is the run's data: the same required roles guard it as the run's detail and
    plot (api.runs_api.visible_run); the run's own UOD says which."""
    try:
        uod = UodDescription.model_validate_json(run.get("uod_json") or "{}")
    except ValidationError:
        return
    if not may_see(role, uod.required_roles):
        raise ApiError(403, f"run {run_id!r} belongs to a unit you may not see")


async def run_csv(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT_KEY]
    run_id = request.match_info["run_id"]
    run = await ctx.read(ctx.storage.run_by_id, run_id)
    if run is None:
        raise ApiError(404, f"no run with id {run_id!r}")
    _check_roles(run, current_user(request)["role"], run_id)
    storage = ctx.storage

    def header() -> tuple[list[tuple[int, str, str | None]], list[str]]:
        with storage.engine.connect() as conn:
            tags = storage.run_tags(conn, run["pk"])
        methods = storage.run_methods(run["pk"])
        return tags, [str(m["version"]) for m in methods]

    tags, versions = await ctx.read(header)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            # run ids come from engines: keep only characters that are safe in a header
            "Content-Disposition": 'attachment; filename="run-{}.csv"'.format(
                re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:100]
            ),
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    uod = json.loads(run["uod_json"] or "{}")
    meta = [
        f"# unit: {run['engine_id']}",
        f"# run id: {run_id}",
        f"# start: {_iso(run['started'])}",
        f"# stop: {_iso(run['stopped'])}",
        f"# uod: {run['uod_name'] or uod.get('name', '')}",
        f"# method version: {run['method_version']}"
        + (f" (versions as run: {', '.join(versions)})" if versions else ""),
    ]
    buffer.write("\n".join(meta) + "\n")
    writer.writerow(
        ["UTC timestamp", "Run Time"]
        + [f"{name} [{unit}]" if unit else name for _, name, unit in tags]
    )
    await response.write(buffer.getvalue().encode())
    buffer.seek(0)
    buffer.truncate()

    loop = asyncio.get_running_loop()
    rows = storage.iter_run_rows(run["pk"], [tag_id for tag_id, _, _ in tags])
    started = run["started"]
    sentinel = object()

    def next_block() -> list[tuple[float, list[ScalarValue]]] | object:
        block = []
        for item in rows:
            block.append(item)
            if len(block) >= 2000:
                break
        return block if block else sentinel

    try:
        while True:
            block = await loop.run_in_executor(ctx.readers, next_block)
            if block is sentinel:
                break
            assert isinstance(block, list)
            for t, values in block:
                writer.writerow([_iso(t), f"{t - started:.3f}"] + [_cell(v) for v in values])
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    finally:
        await loop.run_in_executor(ctx.readers, rows.close)
    await response.write_eof()
    return response


def setup(app: web.Application) -> None:
    # GET /api/runs is served by runs_api (RunSummary of docs/api.md, with since/until/q)
    app.router.add_get("/api/runs/{run_id}/csv", run_csv)
