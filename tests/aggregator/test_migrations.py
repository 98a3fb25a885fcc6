"""The shipped migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import aggregator.models  # noqa: F401  (registers the tables)
from aggregator.db import create_db_engine, upgrade


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_db_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"engine", "run", "sample_chunk", "audit", "contributor", "engine_token"} <= tables


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/wal.sqlite3")
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    engine.dispose()
    assert mode == "wal" and sync == 2  # FULL
