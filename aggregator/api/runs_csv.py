"""GET /api/runs/{run_id}/csv and /xlsx: a run as a file (aggregator/run_export.py makes both;
the rest of /api/runs is runs_api).

The CSV is streamed a block of rows at a time, so a long run never sits in memory. The workbook
is written to a temporary file on a reader thread first (a zip cannot be streamed as it grows),
so a run too long for Excel is still an error answer rather than a cut download."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncGenerator
from typing import IO

from aggregator.api.errors import ApiError
from aggregator.api.openapi import Call, Streamed
from aggregator.api.service import ctx_of, require_run
from aggregator.context import AppContext
from aggregator.run_export import (
    ExportTooLarge,
    RunExport,
    csv_blocks,
    csv_preamble,
    write_xlsx,
)

BLOCK_ROWS = 2000
FILE_CHUNK = 1 << 16


async def run_csv(call: Call[None, None]) -> Streamed:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    export = await ctx.read(RunExport.load, ctx.storage, run)
    return Streamed(_csv(ctx, export), filename=export.filename("csv"))


async def _csv(ctx: AppContext, export: RunExport) -> AsyncGenerator[bytes, None]:
    yield csv_preamble(export).encode()
    loop = asyncio.get_running_loop()
    rows = export.rows(ctx.storage)
    blocks = csv_blocks(export, rows, BLOCK_ROWS)
    try:
        while block := await loop.run_in_executor(ctx.readers, next, blocks, ""):
            yield block.encode()
    finally:
        await loop.run_in_executor(ctx.readers, rows.close)


async def run_xlsx(call: Call[None, None]) -> Streamed:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    export = await ctx.read(RunExport.load, ctx.storage, run)
    loop = asyncio.get_running_loop()
    spool = await loop.run_in_executor(ctx.readers, _workbook, ctx, export)
    return Streamed(_file(ctx, spool), filename=export.filename("xlsx"))


def _workbook(ctx: AppContext, export: RunExport) -> IO[bytes]:
    spool = tempfile.TemporaryFile()  # noqa: SIM115  (closed by _file, after the response)
    try:
        write_xlsx(ctx.storage, export, spool)
    except ExportTooLarge as exc:
        spool.close()
        raise ApiError(422, str(exc)) from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def _file(ctx: AppContext, spool: IO[bytes]) -> AsyncGenerator[bytes, None]:
    loop = asyncio.get_running_loop()
    with contextlib.closing(spool):
        while chunk := await loop.run_in_executor(ctx.readers, spool.read, FILE_CHUNK):
            yield chunk
