"""Who may talk to the aggregator: user accounts, their login sessions, and engine tokens.

Only digests of tokens and hashes of passwords are stored (aggregator.security makes them)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.security_notice import tell
from aggregator.store.rows import EngineTokenRow, SessionUser, TokenState, UserRow
from aggregator.store.tables import T_SESSION, T_TOKEN, T_USER


@dataclass(frozen=True)
class TokenBinding:
    """The answer to "may this token register this engine id?"."""

    ok: bool
    engine_id: str | None
    """The engine id the token is bound to (None: not bound)."""
    reason: str = ""


class Accounts:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock

    def create_engine_token(
        self, name: str, token_digest: str, engine_id: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_TOKEN.c.id).where(T_TOKEN.c.name == name)).first():
                raise ValueError(f"an engine token named {name!r} already exists")
            conn.execute(
                T_TOKEN.insert().values(
                    name=name,
                    token_hash=token_digest,
                    created=self._clock(),
                    revoked=False,
                    engine_id=engine_id,
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

    def bind_engine_token(self, name: str, engine_id: str) -> TokenBinding:
        """Whether token `name` may register `engine_id`, binding an unbound token on the way.

        An unbound token binds only to an engine id that no other valid token is bound to: a
        token created for a new engine cannot take over an existing one (a new token for an
        existing engine is created with its engine id)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(T_TOKEN.c.engine_id, T_TOKEN.c.revoked).where(T_TOKEN.c.name == name)
            ).first()
            if row is None or row.revoked:
                return TokenBinding(False, None, "the engine token was revoked")
            if row.engine_id is not None:
                if row.engine_id == engine_id:
                    return TokenBinding(True, engine_id)
                return TokenBinding(
                    False,
                    row.engine_id,
                    f"this engine token is bound to engine {row.engine_id!r}, not {engine_id!r}",
                )
            owner = conn.execute(
                sa.select(T_TOKEN.c.name).where(
                    T_TOKEN.c.engine_id == engine_id, T_TOKEN.c.revoked.is_(False)
                )
            ).first()
            if owner is not None:
                return TokenBinding(
                    False,
                    None,
                    f"engine {engine_id!r} is bound to another engine token; a new token for it "
                    f"is created with --engine-id {engine_id}",
                )
            conn.execute(
                T_TOKEN.update()
                .where(T_TOKEN.c.name == name, T_TOKEN.c.engine_id.is_(None))
                .values(engine_id=engine_id)
            )
        return TokenBinding(True, engine_id)

    def list_engine_tokens(self) -> list[EngineTokenRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*EngineTokenRow.columns(T_TOKEN)).order_by(T_TOKEN.c.name)
            ).all()
        return [EngineTokenRow.from_row(r) for r in rows]

    def revoke_engine_token(self, name: str) -> TokenState | None:
        """Revoke token `name`; its row before (None: no such token). Revoking twice is a no-op."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(*TokenState.columns(T_TOKEN)).where(T_TOKEN.c.name == name)
            ).first()
            if row is None:
                return None
            if not row.revoked:
                conn.execute(
                    T_TOKEN.update()
                    .where(T_TOKEN.c.name == name)
                    .values(revoked=True, revoked_at=self._clock())
                )
        if not row.revoked:
            tell(self.engine)
        return TokenState.from_row(row)

    def valid_engine_tokens(self, names: Collection[str]) -> set[str]:
        """Which of these token names are still valid: one query for every open engine link."""
        if not names:
            return set()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_TOKEN.c.name).where(
                    T_TOKEN.c.name.in_(list(names)), T_TOKEN.c.revoked.is_(False)
                )
            ).all()
        return {str(r.name) for r in rows}

    def add_user(self, name: str, role: str, password_hash: str, full_name: str = "") -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_USER.c.id).where(T_USER.c.name == name)).first():
                raise ValueError(f"a user named {name!r} already exists")
            conn.execute(
                T_USER.insert().values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    created=self._clock(),
                    full_name=full_name,
                )
            )

    def change_user(
        self, name: str, role: str | None = None, password_hash: str | None = None
    ) -> tuple[str, str] | None:
        """Set the role and/or password of user `name`; (old role, new role), None: no user.

        A new password or a changed role ends the user's sessions, and the serving processes
        are told at once (security_notice), so that no socket acts on the old grant."""
        values: dict[str, str] = {}
        if role is not None:
            values["role"] = role
        if password_hash is not None:
            values["password_hash"] = password_hash
        with self.engine.begin() as conn:
            found = _id_and_role(conn, name)
            if found is None:
                return None
            user_id, old_role = found
            new_role = values.get("role", old_role)
            ends_sessions = password_hash is not None or new_role != old_role
            if values:
                conn.execute(T_USER.update().where(T_USER.c.id == user_id).values(**values))
            if ends_sessions:
                conn.execute(T_SESSION.delete().where(T_SESSION.c.user_id == user_id))
        if ends_sessions:
            tell(self.engine)
        return old_role, new_role

    def delete_user(self, name: str) -> str | None:
        """Delete user `name` and end their sessions; their role (None: no such user)."""
        with self.engine.begin() as conn:
            found = _id_and_role(conn, name)
            if found is None:
                return None
            user_id, old_role = found
            conn.execute(T_SESSION.delete().where(T_SESSION.c.user_id == user_id))
            conn.execute(T_USER.delete().where(T_USER.c.id == user_id))
        tell(self.engine)
        return old_role

    def set_full_name(self, name: str, full_name: str) -> str | None:
        """The printed name shown with the user's signatures; the old one (None: no user)."""
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(T_USER.c.full_name).where(T_USER.c.name == name)
            ).scalar_one_or_none()
            if old is None:
                return None
            conn.execute(T_USER.update().where(T_USER.c.name == name).values(full_name=full_name))
        return str(old)

    def user_by_name(self, name: str) -> UserRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*UserRow.columns(T_USER)).where(T_USER.c.name == name)
            ).first()
        return None if row is None else UserRow.from_row(row)

    def create_session(self, user_id: int, token_digest: str, lifetime: float) -> None:
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(T_SESSION.delete().where(T_SESSION.c.expires < now))
            conn.execute(
                T_SESSION.insert().values(
                    token_hash=token_digest, user_id=user_id, created=now, expires=now + lifetime
                )
            )

    def end_session(self, token_digest: str) -> None:
        """Log out: the session ends here and, told at once, on every serving process."""
        with self.engine.begin() as conn:
            conn.execute(T_SESSION.delete().where(T_SESSION.c.token_hash == token_digest))
        tell(self.engine)

    def session_user(self, token_digest: str) -> SessionUser | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*SessionUser.columns(T_USER))
                .select_from(T_SESSION.join(T_USER, T_USER.c.id == T_SESSION.c.user_id))
                .where(T_SESSION.c.token_hash == token_digest, T_SESSION.c.expires > self._clock())
            ).first()
        return None if row is None else SessionUser.from_row(row)

    def live_sessions(self, token_digests: Collection[str]) -> dict[str, str]:
        """Of these sessions, those still valid (not logged out, not expired, user still
        there), each with its user's current role: one indexed query for every open /ws
        socket, so that sockets follow their account (docs/api.md)."""
        if not token_digests:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_SESSION.c.token_hash, T_USER.c.role)
                .select_from(T_SESSION.join(T_USER, T_USER.c.id == T_SESSION.c.user_id))
                .where(
                    T_SESSION.c.token_hash.in_(list(token_digests)),
                    T_SESSION.c.expires > self._clock(),
                )
            ).all()
        return {str(r.token_hash): str(r.role) for r in rows}


def _id_and_role(conn: sa.Connection, name: str) -> tuple[int, str] | None:
    row = conn.execute(sa.select(T_USER.c.id, T_USER.c.role).where(T_USER.c.name == name)).first()
    return None if row is None else (int(row.id), str(row.role))
