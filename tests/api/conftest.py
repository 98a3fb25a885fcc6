"""A real aggregator on loopback with three users (viewer, operator, admin) and an engine token."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aggregator.api.service import API_STATE_KEY
from aggregator.app import create_app
from aggregator.audit import KEY_FILE, new_key_file
from aggregator.context import Settings
from aggregator.db import create_db_engine, upgrade
from aggregator.notify import NotifyConfig
from aggregator.security import hash_password, new_token, token_hash
from tests.aggregator.conftest import pg_database  # noqa: F401  (fixture)
from tests.aggregator.helpers import Aggregator
from tests.api.fake_engine import FakeEngine, wait_online

PASSWORD = "correct horse"


@dataclass
class Api:
    agg: Aggregator
    http: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    key_file: Path | None = None

    @property
    def url(self) -> str:
        return self.agg.url

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def login(self, name: str, password: str = PASSWORD) -> str:
        async with self.http.post(
            f"{self.url}/api/auth/login", json={"username": name, "password": password}
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])

    async def call(
        self, method: str, path: str, role: str | None = "operator", **kw: Any
    ) -> tuple[int, Any]:
        headers = {**(self.auth(role) if role else {}), **kw.pop("headers", {})}
        async with self.http.request(
            method,
            f"{self.url}{path}",
            headers=headers,
            **kw,
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def engine(self, **kw: Any) -> FakeEngine:
        engine = FakeEngine(self.agg, **kw)
        await engine.start()
        await wait_online(self.agg, engine.engine_id)
        return engine


@pytest.fixture(scope="session")
def password_hash() -> str:
    """argon2 is slow on purpose; hash once for every test user."""
    return hash_password(PASSWORD)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test: migrating takes most of a second."""
    path = tmp_path_factory.mktemp("template") / "setpoint.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite"])  # tests touching storage in depth add "postgres"
def db_url(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "setpoint.sqlite3"
        shutil.copyfile(template_db, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")
    return url


async def start_api(
    db_url: str, tmp_path: Path, password_hash: str, notify: NotifyConfig | None = None
) -> Api:
    """A real aggregator with an engine token and a logged-in viewer, operator and admin;
    `notify` is given to create_app. End it with stop_api."""
    key_file = tmp_path / KEY_FILE
    settings = Settings(
        heartbeat_interval=5.0,
        resend_timeout=1.0,
        batch_window=0.005,
        static_dir=str(tmp_path / "no-ui"),
        audit_key=new_key_file(key_file),
    )
    app = create_app(db_url, settings, notify=notify)
    app[API_STATE_KEY].command_timeout = 2.0
    agg = Aggregator(app)
    await agg.start()
    storage = agg.ctx.storage
    agg.token = new_token()
    storage.create_engine_token("test-" + uuid.uuid4().hex[:8], token_hash(agg.token))
    result = Api(agg, aiohttp.ClientSession(), key_file=key_file)
    try:
        suffix = uuid.uuid4().hex[:6]
        for role in ("viewer", "operator", "admin"):
            name = f"{role}-{suffix}"
            storage.add_user(name, role, password_hash)
            result.names[role] = name
            token = new_token()
            user = storage.user_by_name(name)
            assert user is not None
            storage.create_session(user.id, token_hash(token), 3600.0)
            result.tokens[role] = token
    except BaseException:
        await stop_api(result)
        raise
    return result


async def stop_api(api: Api) -> None:
    await api.http.close()
    await api.agg.stop()


@pytest.fixture
async def api(db_url: str, tmp_path: Path, password_hash: str) -> AsyncIterator[Api]:
    result = await start_api(db_url, tmp_path, password_hash)
    try:
        yield result
    finally:
        await stop_api(result)


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[FakeEngine]:
    fake = await api.engine()
    try:
        yield fake
    finally:
        await fake.aclose()
