"""The audit chain detects edits, insertions and deletions; appends never fork it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.audit import GENESIS, AuditRecord, AuditTrail, record_hash, verify_chain
from aggregator.db import create_db_engine, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'a.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    name = "setpoint_audit_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL answers on 127.0.0.1:5432 but cannot create a database: {exc}")
    engine = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        trail.append(
            time=1_700_000_000.0 + i / 3,
            user="ann",
            action="control",
            unit_id="pc1:chrom",
            run_id="r1" if i % 2 else None,
            old={"state": "Stopped"},
            new={"state": "Running", "i": i},
        )


def test_chain_intact_and_paged(db: sa.Engine) -> None:
    trail = AuditTrail(db)
    fill(trail, 7)
    result = trail.verify()
    assert result.ok and result.checked == 7, result.describe()
    first, cursor = trail.page(before=None, limit=3)
    assert [r.new["i"] for r in first] == [6, 5, 4]  # type: ignore[index, call-overload]
    assert cursor is not None
    rest, _ = trail.page(before=cursor, limit=10)
    assert [r.new["i"] for r in rest] == [3, 2, 1, 0]  # type: ignore[index, call-overload]
    assert rest[-1].prev_hash == GENESIS
    assert first[0].run_id is None and first[1].run_id == "r1"


def test_edit_is_detected_at_the_entry(db: sa.Engine) -> None:
    trail = AuditTrail(db)
    fill(trail, 5)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit SET detail_json = :d WHERE id = 3"),
            {"d": '{"new": {"state": "Stopped"}, "old": null, "run_id": null}'},
        )
    result = trail.verify()
    assert not result.ok and result.bad_id == 3
    assert "content" in result.describe()


def test_deletion_is_detected_at_the_next_entry(db: sa.Engine) -> None:
    trail = AuditTrail(db)
    fill(trail, 5)
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = 2"))
    result = trail.verify()
    assert not result.ok and result.bad_id == 3
    assert "previous hash" in result.reason


def test_concurrent_appends_keep_one_chain(db: sa.Engine) -> None:
    trail = AuditTrail(db)
    threads = [threading.Thread(target=fill, args=(trail, 5)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    result = trail.verify()
    assert result.ok and result.checked == 20, result.describe()


def test_pure_verification_of_a_recomputed_forgery() -> None:
    """Rewriting an entry and recomputing its own hash still breaks the link to the next one."""
    a = AuditRecord(1, 1.0, "ann", "login", None, None, None, None, GENESIS, "")
    a = replace(a, hash=record_hash(a))
    b = AuditRecord(2, 2.0, "ann", "control", "u", "r", "Stopped", "Running", a.hash, "")
    b = replace(b, hash=record_hash(b))
    assert verify_chain([a, b]).ok
    forged = replace(a, user="bob")
    forged = replace(forged, hash=record_hash(forged))
    result = verify_chain([forged, b])
    assert not result.ok and result.bad_id == 2
    assert verify_chain([]).ok
