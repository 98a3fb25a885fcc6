"""Fixtures for the aggregator tests: real databases (SQLite file and PostgreSQL on
127.0.0.1:5432), a real aggregator on a loopback port, and a raw-protocol engine client."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
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
PASSWORD = "secret-pw"


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, migrated PostgreSQL database `<prefix><random>`, dropped afterwards
    (connections still open are ended)."""
    name = prefix + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL answers on 127.0.0.1:5432 but cannot create a database: {exc}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One PostgreSQL database for the whole run; tests keep apart by unique engine and run ids."""
    with fresh_pg_database("setpoint_test_agg_") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test instead of migrating every time."""
    path = tmp_path_factory.mktemp("template") / "setpoint.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "setpoint.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
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
async def aggregator(
    db_url: str, settings: Settings, password_hash: str
) -> AsyncIterator[Aggregator]:
    app = create_app(db_url, settings)
    agg = Aggregator(app)
    await agg.start()
    storage = app[CONTEXT_KEY].storage
    agg.token = new_token()
    storage.create_engine_token("test-" + uuid.uuid4().hex[:8], token_hash(agg.token))
    agg.username = "ann-" + uuid.uuid4().hex[:6]
    agg.password = PASSWORD
    storage.add_user(agg.username, "operator", password_hash)
    try:
        yield agg
    finally:
        await agg.stop()
