"""GET /api/runs/{run_id}/csv: a run streamed as CSV, a block of rows at a time, so a long run
never sits in memory; the rest of /api/runs is runs_api."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from aggregator.api.openapi import Call, Streamed
from aggregator.api.service import ctx_of, require_run
from aggregator.context import AppContext
from protocol import ScalarValue

BLOCK_ROWS = 2000


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


def _preamble(
    run: dict[str, Any], tags: list[tuple[int, str, str | None]], versions: list[str]
) -> str:
    """The `#` metadata lines and the column header."""
    uod = json.loads(run["uod_json"] or "{}")
    meta = [
        f"# unit: {run['engine_id']}",
        f"# run id: {run['run_id']}",
        f"# start: {_iso(run['started'])}",
        f"# stop: {_iso(run['stopped'])}",
        f"# uod: {run['uod_name'] or uod.get('name', '')}",
        f"# method version: {run['method_version']}"
        + (f" (versions as run: {', '.join(versions)})" if versions else ""),
    ]
    buffer = io.StringIO()
    buffer.write("\n".join(meta) + "\n")
    csv.writer(buffer, lineterminator="\n").writerow(
        ["UTC timestamp", "Run Time"]
        + [f"{name} [{unit}]" if unit else name for _, name, unit in tags]
    )
    return buffer.getvalue()


async def run_csv(call: Call[None, None]) -> Streamed:
    run_id = call.path("run_id")
    run = await require_run(call.app, call.need_user(), run_id)
    ctx = ctx_of(call.app)
    storage = ctx.storage

    def columns() -> tuple[list[tuple[int, str, str | None]], list[str]]:
        with storage.engine.connect() as conn:
            tags = storage.run_tags(conn, run["pk"])
        return tags, [str(m["version"]) for m in storage.run_methods(run["pk"])]

    tags, versions = await ctx.read(columns)
    preamble = _preamble(run, tags, versions)
    # run ids come from engines: keep only characters that are safe in a header
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:100]
    return Streamed(_rows(ctx, run, tags, preamble), filename=f"run-{safe_id}.csv")


async def _rows(
    ctx: AppContext, run: dict[str, Any], tags: list[tuple[int, str, str | None]], preamble: str
) -> AsyncGenerator[bytes, None]:
    yield preamble.encode()
    loop = asyncio.get_running_loop()
    rows = ctx.storage.iter_run_rows(run["pk"], [tag_id for tag_id, _, _ in tags])
    started = run["started"]

    def next_block() -> list[tuple[float, list[ScalarValue]]]:
        block = []
        for item in rows:
            block.append(item)
            if len(block) >= BLOCK_ROWS:
                break
        return block

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    try:
        while block := await loop.run_in_executor(ctx.readers, next_block):
            for t, values in block:
                writer.writerow([_iso(t), f"{t - started:.3f}"] + [_cell(v) for v in values])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    finally:
        await loop.run_in_executor(ctx.readers, rows.close)
