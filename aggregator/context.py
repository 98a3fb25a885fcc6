"""What the aiohttp app owns: configuration, storage, the writer, live state, connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from aggregator.budget import SharedBudget
from aggregator.engine_tokens import TokenWatch
from aggregator.link_clock import LinkClock, tick_for
from aggregator.live import LiveHub, LiveState
from aggregator.metrics import Metrics
from aggregator.security_gate import DataVersion, GatedCheck
from aggregator.security_notice import Listener
from aggregator.security_poll import SecurityPoll, check_with_expiry
from aggregator.store import Storage
from aggregator.writer import Writer

if TYPE_CHECKING:
    from aggregator.engine_ws import EngineConnection

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    heartbeat_interval: float = 5.0
    """Seconds between Pings; silence for 3 intervals closes the link (rule 10)."""
    resend_timeout: float = 5.0
    """How long to wait for an engine to answer a ResendRequest before recording the gap."""
    batch_window: float = 0.25
    """Group-commit window: frames arriving within it share one transaction. A commit (with
    SQLite's fsync) costs more CPU than storing a frame: with 5 engines sending a sample a
    second, 0.25 s instead of 0.1 s cut the aggregator's CPU by a fifth to a quarter, and at
    100 engines ~4 commits a second share what ~10 did (bench/README.md, "Aggregator CPU").
    What it delays is the Ack and the stored copy (the engine keeps its frames until the Ack),
    never the live view; a frame after a silence does not wait (writer.py)."""
    register_timeout: float = 10.0
    takeover_timeout: float = 10.0
    """How long a new connection of an engine waits for its old one to finish (commit what it
    accepted) before refusing, so that a stuck old connection cannot lock the engine out."""
    session_lifetime: float = 12 * 3600.0
    secure_cookies: bool = False
    static_dir: str | None = None
    """Built web UI to serve at `/`; None: the repository's frontend/dist."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (besides the site itself) whose pages may make changes with the session cookie."""
    trust_forwarded_for: bool = False
    """Behind a reverse proxy: the client address (for login throttling) is the last one in
    X-Forwarded-For, not the proxy's."""
    audit_key: bytes | None = None
    """Key of the audit head's HMAC (audit.py); None: the head is not anchored (tests)."""
    held_bytes_per_engine: int = 32 * 1024 * 1024
    """Bytes of frames one engine link may have held beyond a missing seq (rule 7)."""
    held_bytes_total: int = 256 * 1024 * 1024
    """The same, for all engine links together."""
    unstored_bytes_per_engine: int = 16 * 1024 * 1024
    """Bytes of one link's frames handed to the writer and not yet committed; above it the
    link is not read until the writer catches up (TCP holds the engine back)."""
    token_check_interval: float = 0.5
    """How often the open engine links' tokens and the open /ws sockets' sessions are checked
    against the database (security_poll.py) while no security notice can reach this process
    (security_notice.py), so that a token revoked or a session ended by another process (the
    CLI) ends its link or socket within a second."""
    security_safety_interval: float = 5.0
    """The same check's period while notices reach this process (every change made through
    Setpoint is then acted on at once): the bound for a change made by hand in the database."""
    metrics_token: str | None = None
    """Bearer token `GET /metrics` requires; None: open (bind it to the internal network)."""


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    writer: Writer
    live: LiveState
    connections: dict[str, EngineConnection] = field(default_factory=dict)
    readers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="setpoint-read"
        )
    )
    metrics: Metrics = field(default_factory=Metrics)
    held_budget: SharedBudget = field(init=False)
    security: SecurityPoll = field(init=False)
    """The one poll of the open links' tokens and the open /ws sockets' sessions."""
    security_check: GatedCheck = field(init=False)
    """Its check: skips the database while SQLite reports no commit (security_gate.py)."""
    data_version: DataVersion | None = field(init=False)
    notices: Listener = field(init=False)
    """Hears security changes told by any process (security_notice.py) and pokes the poll."""
    token_watch: TokenWatch = field(init=False)
    link_clock: LinkClock = field(init=False)
    """The one timer of every engine link's watchdog (link_clock.py)."""

    def __post_init__(self) -> None:
        self.held_budget = SharedBudget(self.settings.held_bytes_total)
        self.data_version = DataVersion.for_engine(self.storage.engine)
        self.security_check = GatedCheck(
            self._query_security,
            self.data_version,
            lambda: self.storage.accounts._clock(),
            inline=None if self.data_version is None else self.data_version.check,
        )
        self.security = SecurityPoll(
            self.security_check,
            self.settings.token_check_interval,
            self.settings.security_safety_interval,
        )
        self.security.until_expiry = self.security_check.until_expiry
        self.notices = Listener(self.storage.engine, self.security.poke)
        self.security.listening = lambda: self.notices.listening
        self.token_watch = TokenWatch(self.security)
        tick = tick_for(self.settings.heartbeat_interval, self.settings.resend_timeout)
        self.link_clock = LinkClock(tick, after=lambda now: self.live.demand.tick())
        self.live.demand.wake_at = self.link_clock.soon

    async def _query_security(
        self, now: float, tokens: set[str], sessions: set[str]
    ) -> tuple[set[str], dict[str, tuple[str, float]]]:
        return await self.read(check_with_expiry, self.storage.engine, now, tokens, sessions)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read-only database call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.readers, fn, *args)

    @property
    def hub(self) -> LiveHub:
        return self.live.hub


CONTEXT_KEY = web.AppKey("setpoint_context", AppContext)
LIVE_HUB_KEY = web.AppKey("setpoint_live_hub", LiveHub)
