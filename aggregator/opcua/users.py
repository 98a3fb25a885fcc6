"""OPC UA logins with Setpoint's users: the same names, passwords, roles and throttle as HTTP.

asyncua asks its user manager synchronously, on the event loop, so the argon2 check runs there
too (about 0.1 s). Two guards keep that from becoming a way to stall ingest: the login throttle
shared with HTTP (five wrong passwords lock the name, over either door), and a ration of
password checks per second for OPC UA as a whole (a sans-I/O token bucket); past the ration a
login is refused without checking. SCADA clients log in once per session, so neither is felt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.user_managers import UserManager

from aggregator.api.roles import ROLE_RANK
from aggregator.api.throttle import Lockout, LoginThrottle
from aggregator.opcua.access import SetpointUser
from aggregator.security import dummy_password_hash, verify_password
from aggregator.store.rows import UserRow


class CheckRation:
    """At most `rate` checks per second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(frozen=True)
class LoginOutcome:
    """What the audit trail records of one OPC UA login attempt."""

    username: str
    ok: bool
    result: str
    lockouts: tuple[Lockout, ...] = ()


class SetpointUserManager(UserManager):
    def __init__(
        self,
        lookup: Callable[[str], UserRow | None],
        throttle: LoginThrottle,
        clock: Callable[[], float],
        ration: CheckRation,
        on_login: Callable[[LoginOutcome], None],
    ) -> None:
        self.lookup = lookup
        self.throttle = throttle
        self.clock = clock
        self.ration = ration
        self.on_login = on_login

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if not username or password is None:
            return None  # anonymous and certificate-only tokens are refused before this
        keys = [f"user {username.casefold()}"]
        now = self.clock()
        if self.throttle.retry_after(keys, now) > 0:
            self.on_login(LoginOutcome(username, False, "too many failed logins"))
            return None
        if not self.ration.take(now):
            self.on_login(LoginOutcome(username, False, "too many OPC UA logins at once"))
            return None
        lockouts = self.throttle.failure(keys, now)  # counted first, as over HTTP
        user = self.lookup(username)
        stored = user.password_hash if user is not None else None
        if stored is None:
            verify_password(dummy_password_hash(), password)  # same work for unknown names
            ok = False
        else:
            ok = verify_password(stored, password)
        role = user.role if user is not None else ""
        if not ok or user is None or role not in ROLE_RANK:
            self.on_login(
                LoginOutcome(username, False, "wrong user name or password", tuple(lockouts))
            )
            return None
        self.throttle.success(keys)
        self.on_login(LoginOutcome(user.name, True, "ok"))
        return SetpointUser(role=UserRole.User, name=user.name, setpoint_role=role)
