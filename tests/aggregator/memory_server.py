"""A real aggregator in its own process with small memory limits, for tests/aggregator/
test_memory_bound.py: its RSS is then its own. Prints `listening on URL` when ready.

    python -m tests.aggregator.memory_server DATABASE_URL
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from aggregator.api.service import API_STATE_KEY
from aggregator.app import create_app
from aggregator.context import Settings

MiB = 1024 * 1024
HELD_PER_ENGINE = 4 * MiB
HELD_TOTAL = 12 * MiB
QUEUE_PER_CLIENT = 2 * MiB
QUEUE_TOTAL = 6 * MiB
TASKS_PER_CLIENT = 3 * MiB
TASKS_TOTAL = 9 * MiB
LIMITS_TOTAL = HELD_TOTAL + QUEUE_TOTAL + TASKS_TOTAL


async def main(url: str) -> None:
    settings = Settings(
        heartbeat_interval=60.0,
        batch_window=0.005,
        held_bytes_per_engine=HELD_PER_ENGINE,
        held_bytes_total=HELD_TOTAL,
        unstored_bytes_per_engine=4 * MiB,
    )
    app = create_app(url, settings)
    state = app[API_STATE_KEY]
    state.command_timeout = 60.0  # actions stay pending while the test floods
    hub = state.ws
    hub.queue_bytes = QUEUE_PER_CLIENT
    hub.queue_budget.limit = QUEUE_TOTAL
    hub.task_bytes = TASKS_PER_CLIENT
    hub.task_budget.limit = TASKS_TOTAL
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
