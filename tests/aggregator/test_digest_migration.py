"""Migration 0012 (issue 15 item 6): the digests kept in received_message are packed into
received_digest, and a resend is compared with them as before (rule 6)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

import protocol as p
from aggregator.db import alembic_config, create_db_engine
from aggregator.ingest_session import message_digest
from aggregator.store import digests

ENGINE_ID = "pc-migrate/Chromatography"


def _message(seq: int, value: float) -> p.TagsUpdated:
    tag = p.TagValue(name="FT01", value=value, tick=1000.0 + seq)
    return p.TagsUpdated(seq=seq, time=1000.0 + seq, run_id="r", tags=[tag], sample=True)


def test_digests_stored_before_0012_are_compared_after_it(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/m.sqlite3")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
        new, old = _message(70, 1.5), _message(71, 2.5)
        conn.execute(
            sa.text(
                "INSERT INTO received_message (engine_id, seq, kind, digest, received) "
                "VALUES (:e, :s, 'TagsUpdated', :d, 0)"
            ),
            [
                {"e": ENGINE_ID, "s": 70, "d": message_digest(new)},
                {"e": ENGINE_ID, "s": 71, "d": p.content_digest(old)},
            ],
        )
        command.upgrade(config, "0012")
        assert "received_message" not in sa.inspect(conn).get_table_names()
        assert digests.stored_seqs(conn, ENGINE_ID) == [70, 71]
        for message, value in ((new, 9.0), (old, 9.5)):
            stored = digests.stored_slot(conn, ENGINE_ID, message.seq)
            assert stored is not None
            resent = p.as_historical(message)
            assert digests.same_as_stored(stored, resent, message_digest(resent))
            differing = _message(message.seq, value)
            assert not digests.same_as_stored(stored, differing, message_digest(differing))
        assert digests.stored_slot(conn, ENGINE_ID, 69) is None
        command.downgrade(config, "0011")
        assert "received_message" in sa.inspect(conn).get_table_names()
    engine.dispose()
