"""Who may talk to the aggregator: user accounts, their login sessions, and engine tokens.

Only digests of tokens and hashes of passwords are stored (aggregator.security makes them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.store.tables import T_SESSION, T_TOKEN, T_USER


class Accounts:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock

    def create_engine_token(self, name: str, token_digest: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_TOKEN.c.id).where(T_TOKEN.c.name == name)).first():
                raise ValueError(f"an engine token named {name!r} already exists")
            conn.execute(
                T_TOKEN.insert().values(
                    name=name, token_hash=token_digest, created=self._clock(), revoked=False
                )
            )

    def engine_token_name(self, token_digest: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_TOKEN.c.name).where(
                    T_TOKEN.c.token_hash == token_digest, T_TOKEN.c.revoked.is_(False)
                )
            ).first()
        return None if row is None else str(row.name)

    def add_user(self, name: str, role: str, password_hash: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_USER.c.id).where(T_USER.c.name == name)).first():
                raise ValueError(f"a user named {name!r} already exists")
            conn.execute(
                T_USER.insert().values(
                    name=name, role=role, password_hash=password_hash, created=self._clock()
                )
            )

    def user_by_name(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_USER).where(T_USER.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def create_session(self, user_id: int, token_digest: str, lifetime: float) -> None:
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(T_SESSION.delete().where(T_SESSION.c.expires < now))
            conn.execute(
                T_SESSION.insert().values(
                    token_hash=token_digest, user_id=user_id, created=now, expires=now + lifetime
                )
            )

    def session_user(self, token_digest: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_USER.c.id, T_USER.c.name, T_USER.c.role)
                .select_from(T_SESSION.join(T_USER, T_USER.c.id == T_SESSION.c.user_id))
                .where(T_SESSION.c.token_hash == token_digest, T_SESSION.c.expires > self._clock())
            ).first()
        return None if row is None else dict(row._mapping)
