"""Fixtures for the aggregator tests: real databases (SQLite file and PostgreSQL on
127.0.0.1:5432), a real aggregator on a loopback port, and a raw-protocol engine client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.app import create_app
from aggregator.context import CONTEXT_KEY, Settings
from aggregator.db import create_db_engine, upgrade
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage
from tests.aggregator.helpers import Aggregator

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One PostgreSQL database for the whole run; tests keep apart by unique engine and run ids."""
    name = "setpoint_test_agg_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'setpoint.sqlite3'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    engine = create_db_engine(db_url)
    upgrade(engine)
    store = Storage(engine)
    yield store
    engine.dispose()


@pytest.fixture
def settings() -> Settings:
    return Settings(heartbeat_interval=5.0, resend_timeout=1.0, batch_window=0.005)


@pytest.fixture
async def aggregator(db_url: str, settings: Settings) -> AsyncIterator[Aggregator]:
    app = create_app(db_url, settings)
    agg = Aggregator(app)
    await agg.start()
    storage = app[CONTEXT_KEY].storage
    agg.token = new_token()
    storage.create_engine_token("test-" + uuid.uuid4().hex[:8], token_hash(agg.token))
    agg.username = "ann-" + uuid.uuid4().hex[:6]
    agg.password = "secret-pw"
    storage.add_user(agg.username, "operator", hash_password(agg.password))
    try:
        yield agg
    finally:
        await agg.stop()
