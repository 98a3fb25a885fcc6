"""Suite-wide policies. PostgreSQL: tests marked `postgres` run against the server on
127.0.0.1:5432; where none answers they are skipped with one line saying so, except when
SETPOINT_REQUIRE_POSTGRES is set (CI), where a missing server is an error, not a skip.
Order: the suite runs on two xdist workers (`make test`); the longest tests go first so the
last minutes are not one worker finishing the newcomer test alone."""

from __future__ import annotations

import os
import socket

import pytest

PG_ADDRESS = ("127.0.0.1", int(os.environ.get("SETPOINT_TEST_PG_PORT", "5432")))
_SKIPPED = pytest.StashKey[tuple[int, str]]()


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None. A TCP connect is enough: tests create their own
    databases, and a server that refuses them fails those tests loudly."""
    try:
        with socket.create_connection(PG_ADDRESS, timeout=1.0):
            return None
    except OSError as exc:
        return f"no PostgreSQL server on {PG_ADDRESS[0]}:{PG_ADDRESS[1]} ({exc.strerror or exc})"


def _slowness(item: pytest.Item) -> int:
    if "newcomer" in item.keywords:
        return 0
    return 1 if "slow" in item.keywords else 2


def _slowest_modules_first(items: list[pytest.Item]) -> None:
    """Whole files move, never single tests: some files' tests build on the one before."""
    rank: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        rank[path] = min(rank.get(path, 2), _slowness(item))
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _slowest_modules_first(items)
    marked = [item for item in items if "postgres" in item.keywords]
    if not marked:
        return
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("SETPOINT_REQUIRE_POSTGRES"):
        raise pytest.UsageError(f"SETPOINT_REQUIRE_POSTGRES is set but {problem}")
    skip = pytest.mark.skip(reason=problem)
    for item in marked:
        item.add_marker(skip)
    config.stash[_SKIPPED] = (len(marked), problem)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    skipped = config.stash.get(_SKIPPED, None)
    if skipped is not None:
        count, problem = skipped
        terminalreporter.write_line(
            f"setpoint: {count} PostgreSQL tests skipped: {problem} "
            "(start it, or set SETPOINT_REQUIRE_POSTGRES=1 to make this an error)",
            yellow=True,
        )
