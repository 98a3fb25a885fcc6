"""The audit chain stays one chain when two aggregator nodes append at once (issue 21 item 3):
each node has its own connection pool and its own in-process lock, so only PostgreSQL's advisory
lock around the append orders them. `audit verify` (the real command) checks the result."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.audit import KEY_FILE, AuditTrail, new_key_file
from aggregator.db import create_db_engine
from tests.aggregator.conftest import fresh_pg_database
from tests.aggregator.test_cli import run_cli

pytestmark = pytest.mark.postgres

PER_NODE = 60


@pytest.fixture
def site_database() -> Iterator[str]:
    with fresh_pg_database("setpoint_test_audit_nodes_") as url:
        yield url


def test_two_nodes_appending_at_once_keep_one_verified_chain(
    site_database: str, tmp_path: Path
) -> None:
    key = new_key_file(tmp_path / KEY_FILE)
    engines = [create_db_engine(site_database) for _ in range(2)]
    trails = [AuditTrail(engine, key=key) for engine in engines]
    start = threading.Barrier(len(trails))
    failures: list[BaseException] = []

    def node(index: int, trail: AuditTrail) -> None:
        try:
            start.wait(10)
            for n in range(PER_NODE):
                trail.append(time=float(n), user=f"node-{index}", action="control", new=n)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=node, args=(i, trail)) for i, trail in enumerate(trails)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)
        with engines[0].connect() as conn:
            users = conn.execute(sa.text('SELECT "user" FROM audit ORDER BY id')).scalars().all()
            forks = conn.execute(
                sa.text("SELECT count(*) FROM audit GROUP BY prev_hash HAVING count(*) > 1")
            ).all()
    finally:
        for engine in engines:
            engine.dispose()
    assert not forks, "two entries share a previous hash: the chain forked"
    assert len(users) == 2 * PER_NODE
    assert len(set(users[: PER_NODE + 1])) == 2, "the nodes did not actually interleave"
    result = run_cli(
        "audit",
        "verify",
        "--database",
        site_database,
        "--audit-key",
        str(tmp_path / KEY_FILE),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"audit trail intact: {2 * PER_NODE} entries" in result.stdout
