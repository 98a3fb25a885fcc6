"""The method library: named methods, their immutable versions and the state each version is in,
and which library version each unit was last loaded with.

A new text is always a new version, so a version's text never changes after anyone signed it;
its state (draft, reviewed, approved, retired) moves only by signatures (store/signatures.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.store.rows import MethodListing, MethodRow, MethodVersionRow, UnitSourceRow

T_METHOD = SQLModel.metadata.tables[str(m.MethodRecord.__tablename__)]
T_VERSION = SQLModel.metadata.tables[str(m.MethodVersionRecord.__tablename__)]
T_SOURCE = SQLModel.metadata.tables[str(m.UnitMethodSource.__tablename__)]

STATES = ("draft", "reviewed", "approved", "retired")
MAX_NAME = 256


class StaleVersion(Exception):
    """The method has a newer version than the one the editor started from."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


def text_sha256(text: str) -> str:
    """Of the text as a unit holds it: line ends as \\n, trailing blank lines ignored, so the
    text loaded onto a unit and the library's hash the same."""
    normal = text.replace("\r\n", "\n").rstrip("\n")
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()


class MethodLibrary:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock

    def create(self, name: str, text: str, author: str) -> MethodRow:
        """The new method with its version 1 (a draft); ValueError when the name is taken."""
        now = self._clock()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_METHOD.c.id).where(T_METHOD.c.name == name)).first():
                raise ValueError(f"a method named {name!r} already exists")
            method_id = conn.execute(
                T_METHOD.insert()
                .values(name=name, created=now, created_by=author)
                .returning(T_METHOD.c.id)
            ).scalar_one()
            self._insert_version(conn, int(method_id), 1, text, author, now)
        found = self.get(int(method_id))
        assert found is not None
        return found

    def add_version(
        self, method_id: int, text: str, author: str, expected_version: int
    ) -> MethodVersionRow:
        """The new version (a draft); LookupError: no such method; StaleVersion."""
        now = self._clock()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_METHOD.c.id).where(T_METHOD.c.id == method_id)).first():
                latest = int(
                    conn.execute(
                        sa.select(sa.func.max(T_VERSION.c.version)).where(
                            T_VERSION.c.method_id == method_id
                        )
                    ).scalar_one()
                    or 0
                )
            else:
                raise LookupError(f"no method with id {method_id}")
            if latest != expected_version:
                raise StaleVersion(latest)
            self._insert_version(conn, method_id, latest + 1, text, author, now)
        found = self.version(method_id, latest + 1)
        assert found is not None
        return found

    @staticmethod
    def _insert_version(
        conn: Connection, method_id: int, version: int, text: str, author: str, now: float
    ) -> None:
        conn.execute(
            T_VERSION.insert().values(
                method_id=method_id,
                version=version,
                text=text,
                author=author,
                created=now,
                state="draft",
            )
        )

    def list_methods(self) -> list[MethodListing]:
        """Each method with its newest version's number and state, and its approved version."""
        with self.engine.connect() as conn:
            methods = conn.execute(sa.select(T_METHOD).order_by(T_METHOD.c.name)).all()
            versions = conn.execute(
                sa.select(
                    T_VERSION.c.method_id,
                    T_VERSION.c.version,
                    T_VERSION.c.state,
                    T_VERSION.c.created,
                    T_VERSION.c.author,
                ).order_by(T_VERSION.c.method_id, T_VERSION.c.version)
            ).all()
        by_method: dict[int, list[Any]] = {}
        for row in versions:
            by_method.setdefault(int(row.method_id), []).append(row)
        out = []
        for row in methods:
            own = by_method.get(int(row.id), [])
            latest = own[-1] if own else None
            approved = [v.version for v in own if v.state == "approved"]
            out.append(
                MethodListing(
                    id=int(row.id),
                    name=row.name,
                    created=row.created,
                    created_by=row.created_by,
                    latest_version=0 if latest is None else int(latest.version),
                    latest_state="" if latest is None else latest.state,
                    updated=row.created if latest is None else latest.created,
                    approved_version=approved[-1] if approved else None,
                )
            )
        return out

    def get(self, method_id: int) -> MethodRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_METHOD).where(T_METHOD.c.id == method_id)).first()
            if row is None:
                return None
            versions = conn.execute(
                sa.select(T_VERSION)
                .where(T_VERSION.c.method_id == method_id)
                .order_by(T_VERSION.c.version)
            ).all()
        return MethodRow.from_row(
            row, versions=tuple(self._version_row(v, row.name) for v in versions)
        )

    @staticmethod
    def _version_row(row: Any, name: str) -> MethodVersionRow:
        return MethodVersionRow.from_row(row, name=name, sha256=text_sha256(row.text))

    def version(self, method_id: int, version: int) -> MethodVersionRow | None:
        return self._one(
            sa.and_(T_VERSION.c.method_id == method_id, T_VERSION.c.version == version)
        )

    def version_by_id(self, version_id: int) -> MethodVersionRow | None:
        return self._one(T_VERSION.c.id == version_id)

    def _one(self, where: Any) -> MethodVersionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_VERSION, T_METHOD.c.name)
                .select_from(T_VERSION.join(T_METHOD, T_METHOD.c.id == T_VERSION.c.method_id))
                .where(where)
            ).first()
        return None if row is None else self._version_row(row, row.name)

    def set_state(self, conn: Connection, version: MethodVersionRow, state: str) -> None:
        """Approving a version retires the method's earlier approved ones: one approved
        version per method is what a unit may run."""
        assert state in STATES
        if state == "approved":
            conn.execute(
                T_VERSION.update()
                .where(
                    T_VERSION.c.method_id == version.method_id,
                    T_VERSION.c.state == "approved",
                    T_VERSION.c.id != version.id,
                )
                .values(state="retired")
            )
        conn.execute(T_VERSION.update().where(T_VERSION.c.id == version.id).values(state=state))

    # --- the library version on a unit -----------------------------------------------------------

    def set_unit_source(self, unit_id: str, version_id: int, text: str, user: str) -> None:
        values = {
            "method_version_id": version_id,
            "text_sha256": text_sha256(text),
            "loaded": self._clock(),
            "loaded_by": user,
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                T_SOURCE.update().where(T_SOURCE.c.unit_id == unit_id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(T_SOURCE.insert().values(unit_id=unit_id, **values))

    def unit_source(self, unit_id: str) -> UnitSourceRow | None:
        """The library version last loaded onto the unit, with its current state."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_SOURCE).where(T_SOURCE.c.unit_id == unit_id)).first()
        if row is None:
            return None
        version = self.version_by_id(int(row.method_version_id))
        if version is None:
            return None
        return UnitSourceRow(version, row.loaded, row.loaded_by)

    def versions_with_text(self, sha256: str) -> list[MethodVersionRow]:
        """Library versions whose text hashes to `sha256` (the method a run ran, recognised)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_VERSION, T_METHOD.c.name)
                .select_from(T_VERSION.join(T_METHOD, T_METHOD.c.id == T_VERSION.c.method_id))
                .order_by(T_VERSION.c.id)
            ).all()
        return [self._version_row(r, r.name) for r in rows if text_sha256(r.text) == sha256]
