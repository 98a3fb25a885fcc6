"""Issue 21 item 2: an engine given two aggregators on one PostgreSQL database fails over when
the one it reports to is killed (SIGKILL, each aggregator a real `serve` process), and every
message ends up stored exactly once: the second resumes from the high-water mark in the shared
database, and the engine resends from its durable outbox what the first had not acknowledged."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.audit import KEY_FILE, new_key_file
from aggregator.db import create_db_engine, upgrade
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage
from aggregator.store.digests import stored_seqs
from aggregator.store.tables import T_SEQ
from tests.aggregator.conftest import PG_ADMIN
from tests.faults.harness import (
    ADMIN,
    AggregatorProcess,
    Api,
    ScriptedEngine,
    assert_run_complete,
    until,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def site_database() -> Iterator[str]:
    """A database of its own: the two nodes' only shared state, checked row by row at the end."""
    name = "setpoint_test_failover_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare_site(url: str, directories: list[Path]) -> str:
    """Users and an engine token in the database; the same audit key on every node. Returns
    the engine token."""
    engine = create_db_engine(url)
    upgrade(engine)
    storage = Storage(engine)
    storage.add_user(ADMIN[0], "admin", hash_password(ADMIN[1]))
    token = new_token()
    storage.create_engine_token("failover-engine", token_hash(token))
    engine.dispose()
    for directory in directories:
        directory.mkdir(parents=True)
    new_key_file(directories[0] / KEY_FILE)
    for directory in directories[1:]:
        shutil.copy2(directories[0] / KEY_FILE, directory / KEY_FILE)
    return token


async def test_engine_fails_over_to_the_second_aggregator(
    site_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / "node-a", tmp_path / "node-b"]
    token = prepare_site(site_database, dirs)
    monkeypatch.setenv("SETPOINT_DATABASE_URL", site_database)
    node_a, node_b = AggregatorProcess(dirs[0]), AggregatorProcess(dirs[1])
    node_a.start()
    node_b.start()
    urls = [f"ws://127.0.0.1:{node.port}" for node in (node_a, node_b)]
    engine = ScriptedEngine(urls, token, tmp_path / "engine")
    try:
        await engine.start("failover-run")
        await until(lambda: engine.link.connected, 15, "registration with node A")
        assert engine.link.url == f"{urls[0]}/engine/ws"
        await engine.produce_for(1.5)
        await until(lambda: engine.link.acked_seq > 10, 15, "data stored through node A")

        node_a.kill()  # mid-run, with frames in flight
        await engine.produce_for(0.5)
        await until(lambda: engine.link.connected, 15, "the link on node B")
        assert engine.link.url == f"{urls[1]}/engine/ws"
        await engine.produce_for(1.5)
        await engine.stop_run()
        assert engine.link.pending == 0
        high_water = engine.link.high_water
    finally:
        await engine.link.stop(flush_timeout=0)
        node_a.kill()

    api = Api(node_b.http)
    try:
        await api.login()
        await assert_run_complete(api, "failover-run", engine.produced)
    finally:
        await api.close()
        node_b.kill()
    db = create_db_engine(site_database)
    try:
        with db.connect() as conn:
            [(engine_id, last_seq)] = conn.execute(sa.select(T_SEQ.c.engine_id, T_SEQ.c.last_seq))
            received = stored_seqs(conn, engine_id)
    finally:
        db.dispose()
    # RunStarted, the samples and RunStopped: each seq stored once, none missing
    assert last_seq == high_water == engine.produced + 2
    assert received == list(range(1, high_water + 1))
