"""Engines and their tags: what an engine's RegisterEngine records, and the tag ids samples are
stored under.

Runs on the writer thread only (see aggregator.store.ingest), which is why the caches here can
be trusted: nothing else writes these rows."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.tables import T_ENGINE, T_SEQ, T_TAG
from protocol import RegisterEngine


@dataclass(frozen=True)
class EngineUod:
    """The UOD an engine registered with, copied into each run it opens."""

    json: str
    hash: str
    name: str


class Registry:
    """Owns the writer's caches of tag ids and of each engine's UOD."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the caches (after a failed transaction they may name rolled-back rows)."""
        self._tag_ids: dict[tuple[str, str], int] = {}
        self._uods: dict[str, EngineUod] = {}

    def register(self, conn: Connection, reg: RegisterEngine, token_name: str, now: float) -> int:
        """Record the engine, its UOD and tags; return the last seq stored for it."""
        uod = EngineUod(reg.uod.model_dump_json(), reg.uod_hash, reg.uod_name)
        values = {
            "computer_name": reg.computer_name,
            "uod_name": reg.uod_name,
            "session_id": reg.session_id,
            "engine_version": reg.engine_version,
            "protocol_version": reg.protocol_version,
            "uod_json": uod.json,
            "uod_hash": reg.uod_hash,
            "method_hash": reg.method_hash,
            "token_name": token_name,
            "registered_at": now,
            "last_seen": now,
        }
        if conn.execute(sa.select(T_ENGINE.c.id).where(T_ENGINE.c.id == reg.engine_id)).first():
            conn.execute(T_ENGINE.update().where(T_ENGINE.c.id == reg.engine_id).values(**values))
        else:
            conn.execute(T_ENGINE.insert().values(id=reg.engine_id, control_json="{}", **values))
        self._record_tags(conn, reg.engine_id, {tag.name: tag.unit for tag in reg.uod.tags})
        row = conn.execute(
            sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == reg.engine_id)
        ).first()
        if row is None:
            conn.execute(T_SEQ.insert().values(engine_id=reg.engine_id, last_seq=0, updated=now))
        # Kept even though the transaction may still fail: the caller then resets the caches.
        self._uods[reg.engine_id] = uod
        return 0 if row is None else int(row.last_seq)

    def forget(self, engine_id: str) -> None:
        """Forget one engine's cached rows: another node registered it since we did."""
        self._uods.pop(engine_id, None)
        for key in [key for key in self._tag_ids if key[0] == engine_id]:
            del self._tag_ids[key]

    def _record_tags(self, conn: Connection, engine_id: str, units: dict[str, str | None]) -> None:
        """The UOD's tags in a few statements, not one per tag: a site's engines all register
        at once after a fail-over, one after another on the writer thread."""
        where = T_TAG.c.engine_id == engine_id
        rows = {
            row.name: row
            for row in conn.execute(sa.select(T_TAG.c.id, T_TAG.c.name, T_TAG.c.unit).where(where))
        }
        missing = [name for name in units if name not in rows]
        if missing:
            conn.execute(
                T_TAG.insert(),
                [{"engine_id": engine_id, "name": n, "unit": units[n]} for n in missing],
            )
            query = sa.select(T_TAG.c.id, T_TAG.c.name, T_TAG.c.unit).where(
                where, T_TAG.c.name.in_(missing)
            )
            rows.update({row.name: row for row in conn.execute(query)})
        for name, unit in units.items():
            row = rows[name]
            if unit is not None and row.unit != unit:
                conn.execute(T_TAG.update().where(T_TAG.c.id == row.id).values(unit=unit))
            self._tag_ids[(engine_id, name)] = int(row.id)

    def uod(self, conn: Connection, engine_id: str) -> EngineUod:
        uod = self._uods.get(engine_id)
        if uod is not None:
            return uod
        row = conn.execute(
            sa.select(T_ENGINE.c.uod_json, T_ENGINE.c.uod_hash, T_ENGINE.c.uod_name).where(
                T_ENGINE.c.id == engine_id
            )
        ).first()
        uod = (
            EngineUod("{}", "", "")
            if row is None
            else EngineUod(row.uod_json, row.uod_hash, row.uod_name)
        )
        self._uods[engine_id] = uod
        return uod

    def tag_id(
        self,
        conn: Connection,
        engine_id: str,
        name: str,
        unit: str | None,
    ) -> int:
        """The id of an engine's tag, created on first use (a tag the UOD did not list). A
        changed unit is recorded when the row is read, i.e. when not cached."""
        key = (engine_id, name)
        tag_id = self._tag_ids.get(key)
        if tag_id is not None:
            return tag_id
        row = conn.execute(
            sa.select(T_TAG.c.id, T_TAG.c.unit).where(
                T_TAG.c.engine_id == engine_id, T_TAG.c.name == name
            )
        ).first()
        if row is None:
            inserted = conn.execute(
                T_TAG.insert().values(engine_id=engine_id, name=name, unit=unit)
            ).inserted_primary_key
            assert inserted is not None
            tag_id = int(inserted[0])
        else:
            tag_id = int(row.id)
            if unit is not None and row.unit != unit:
                conn.execute(T_TAG.update().where(T_TAG.c.id == tag_id).values(unit=unit))
        self._tag_ids[key] = tag_id
        return tag_id
