"""Issue 21 item 4: PostgreSQL restarted mid-run. Ingest pauses while the database is down (the
engine is not acknowledged and keeps buffering in its durable outbox), and after the restart
every sample arrives, stored exactly once.

The machine's shared PostgreSQL must never be restarted by a test: this one starts a private
cluster of its own (initdb + pg_ctl from /usr/lib/postgresql/*/bin, in a temporary directory, on
a free loopback port) and stops it by its postmaster's PID file (pg_ctl stop)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.harness import AggregatorProcess, Api, ScriptedEngine, assert_run_complete, until
from tests.faults.test_failover import prepare_site
from tests.net import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own: initdb'd once, started and stopped at will."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="setpoint-pg-"))
        self.data = self.root / "data"
        # PostgreSQL refuses to run as root: as the postgres user when the tests run as root
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.root, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, *args], check=True, capture_output=True, timeout=60, cwd=self.root
        )

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -F"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.root / "log"), "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        return None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return None
    return Path(found[-1]).parent


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) to start a private one"
        )
    server = PrivatePostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


async def test_postgres_restarted_mid_run(
    private_postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "node"
    token = prepare_site(private_postgres.url, [data_dir])
    monkeypatch.setenv("SETPOINT_DATABASE_URL", private_postgres.url)
    node = AggregatorProcess(data_dir)
    node.start()
    engine = ScriptedEngine(node.http.replace("http", "ws"), token, tmp_path / "engine")
    api = Api(node.http)
    try:
        await engine.start("pg-restart-" + uuid.uuid4().hex[:6])
        await until(lambda: engine.link.connected, 15, "registration")
        await engine.produce_for(1.0)
        await until(lambda: engine.link.acked_seq > 5, 15, "data stored before the restart")

        private_postgres.stop()
        await engine.produce_for(1.5)  # ingest pauses: the engine keeps buffering
        assert engine.link.acked_seq < engine.link.high_water, "all acknowledged while down"
        # an engine connecting now is told to retry (503), not met with a server error
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    f"{node.http}/engine/ws", headers={"Authorization": f"Bearer {token}"}
                )
        assert refused.value.status == 503
        assert refused.value.headers is not None and refused.value.headers["Retry-After"]
        private_postgres.start()

        await engine.produce_for(1.0)
        await engine.stop_run(flush_timeout=45.0)
        assert engine.link.pending == 0
        await api.login()
        await assert_run_complete(api, engine.run_id, engine.produced)
    finally:
        await engine.link.stop(flush_timeout=0)
        await api.close()
        node.kill()
