"""The audit chain detects edits, insertions and deletions; appends never fork it; the keyed head
detects removed newest entries and a chain recomputed after an edit."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.audit import (
    GENESIS,
    AuditRecord,
    AuditTrail,
    canonical,
    chain_hash,
    record_hash,
    verify_chain,
)
from aggregator.db import create_db_engine, upgrade
from tests.api.regulated_helpers import new_of


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
    assert [new_of(r)["i"] for r in first] == [6, 5, 4]
    assert cursor is not None
    rest, _ = trail.page(before=cursor, limit=10)
    assert [new_of(r)["i"] for r in rest] == [3, 2, 1, 0]
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


# --- the anchored head (issue 13 item 10) ------------------------------------------------------

KEY = b"k" * 32


def recompute_chain(db: sa.Engine, start: int) -> None:
    """What an intruder with database access but no key does after editing an entry: rehash it
    and every entry after it, so that the chain alone looks intact."""
    trail = AuditTrail(db)
    records = list(trail.iter_all())
    prev = records[start - 2].hash if start > 1 else GENESIS
    with db.begin() as conn:
        for record in records[start - 1 :]:
            fixed = replace(record, prev_hash=prev)
            digest = record_hash(fixed)
            conn.execute(
                sa.text("UPDATE audit SET prev_hash = :p, hash = :h WHERE id = :i"),
                {"p": prev, "h": digest, "i": record.id},
            )
            prev = digest


def test_keyed_trail_intact_passes(db: sa.Engine) -> None:
    trail = AuditTrail(db, key=KEY)
    fill(trail, 6)
    result = trail.verify()
    assert result.ok and result.checked == 6, result.describe()
    head = trail.head()
    assert head is not None and head.last_id == 6


def test_deleting_the_newest_entries_is_detected(db: sa.Engine) -> None:
    trail = AuditTrail(db, key=KEY)
    fill(trail, 6)
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id >= 5"))
    assert AuditTrail(db).verify().ok  # the chain alone cannot tell
    result = trail.verify()
    assert not result.ok and "ends at entry 4" in result.reason, result.describe()


def test_an_edit_with_the_chain_recomputed_is_detected(db: sa.Engine) -> None:
    trail = AuditTrail(db, key=KEY)
    fill(trail, 6)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET \"user\" = 'mallory' WHERE id = 3"))
    recompute_chain(db, 3)
    assert AuditTrail(db).verify().ok  # the chain alone cannot tell
    result = trail.verify()
    assert not result.ok and "recomputed" in result.reason, result.describe()


def test_moving_the_head_without_the_key_is_detected(db: sa.Engine) -> None:
    trail = AuditTrail(db, key=KEY)
    fill(trail, 6)
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = 6"))
        last = conn.execute(sa.text("SELECT hash FROM audit WHERE id = 5")).scalar()
        conn.execute(sa.text("UPDATE audit_head SET last_id = 5, last_hash = :h"), {"h": last})
    result = trail.verify()
    assert not result.ok and "HMAC" in result.reason
    assert not AuditTrail(db, key=b"another key, 32 bytes long......").verify().ok
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_head"))
    assert "not anchored" in trail.verify().reason


def test_run_pk_is_covered(db: sa.Engine) -> None:
    trail = AuditTrail(db, key=KEY)
    trail.append(time=1.0, user="ann", action="control", unit_id="u", run_id="r1", run_pk=7)
    trail.append(time=2.0, user="ann", action="control", unit_id="u")
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET run_pk = 8 WHERE id = 1"))
    result = trail.verify()
    assert not result.ok and result.bad_id == 1 and "content" in result.reason


def test_entries_from_before_run_pk_was_hashed_still_verify(db: sa.Engine) -> None:
    """A trail written by an older aggregator: no "v" in the detail, run_pk not hashed. It
    verifies as written, and the first start with a key anchors its head."""
    prev = GENESIS
    with db.begin() as conn:
        for i in range(1, 4):
            content = canonical(
                time=float(i),
                user="ann",
                action="control",
                unit_id="u",
                run_id="r1",
                old=None,
                new={"i": i},
                version=1,
            )
            digest = chain_hash(prev, content)
            conn.execute(
                sa.text(
                    'INSERT INTO audit (time, "user", action, unit_id, run_pk, detail_json, '
                    "prev_hash, hash) VALUES (:t, 'ann', 'control', 'u', 5, :d, :p, :h)"
                ),
                {
                    "t": float(i),
                    "d": json.dumps({"run_id": "r1", "old": None, "new": {"i": i}}),
                    "p": prev,
                    "h": digest,
                },
            )
            prev = digest
    trail = AuditTrail(db, key=KEY)
    assert "not anchored" in trail.verify().reason
    assert trail.anchor() is True and trail.anchor() is False  # only once
    fill(trail, 2)  # new entries: hashed with run_pk, chained onto the old ones
    result = trail.verify()
    assert result.ok and result.checked == 5, result.describe()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET run_pk = 6 WHERE id = 2"))
    assert trail.verify().ok  # documented: an old entry's run_pk is not covered
