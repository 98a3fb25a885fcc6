"""`setpoint-aggregator` as people run it: help, tokens, users, serve, its one-line errors, and
runs surviving kill -9 of the aggregator."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

import protocol as p
from aggregator import cli
from aggregator.db import create_db_engine, upgrade
from aggregator.security import new_token, token_hash
from aggregator.store import Storage
from aggregator.store.tables import T_TOKEN, T_USER
from tests.aggregator.helpers import RawEngine, tags

EXE = [sys.executable, "-m", "aggregator.cli"]


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a process: for what needs one (serve, exit codes, stray output)."""
    return subprocess.run(
        [*EXE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


class InProcess:
    """cli.main in this process: the same code path, without paying for a Python start."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(capsys, monkeypatch)


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(
    "args", [[], ["serve"], ["user"], ["user", "add"], ["engine-token"], ["engine-token", "create"]]
)
def test_help_describes_every_option(main: InProcess, args: list[str]) -> None:
    result = main(*args, "--help")
    assert result.returncode == 0
    for option in re.findall(r"(--[a-z-]+)", result.stdout):
        assert option in result.stdout
    if args == ["serve"]:
        for option in ("--host", "--port", "--database", "--data-dir"):
            assert option in result.stdout
        assert "127.0.0.1" in result.stdout


def test_engine_token_is_printed_once_and_stored_hashed(main: InProcess, tmp_path: Path) -> None:
    result = main("engine-token", "create", "pc1", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(token) >= 32 and "\n" not in token
    engine = create_db_engine(f"sqlite:///{tmp_path / 'setpoint.sqlite3'}")
    with engine.connect() as conn:
        stored = conn.execute(sa.select(T_TOKEN.c.name, T_TOKEN.c.token_hash)).all()
    engine.dispose()
    assert [row.name for row in stored] == ["pc1"]
    assert token not in stored[0].token_hash
    again = main("engine-token", "create", "pc1", "--data-dir", str(tmp_path))
    one_line_error(again, "already exists")


def test_user_add_from_stdin_hashes_the_password(main: InProcess, db_url: str) -> None:
    name = "user-" + uuid.uuid4().hex[:6]
    args = ["user", "add", name, "--role", "operator", "--password-stdin", "--database", db_url]
    result = main(*args, stdin="lab pass phrase 7\n")
    assert result.returncode == 0, result.stderr
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(T_USER).where(T_USER.c.name == name)).one()
    engine.dispose()
    assert row.role == "operator" and row.password_hash.startswith("$argon2")
    assert "lab pass phrase 7" not in row.password_hash
    one_line_error(main(*args, stdin="lab pass phrase 7\n"), "already exists")


def test_user_add_prompts_without_stdin_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["a typed pass phrase", "a typed pass phrase"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert cli.main(["user", "add", "ann", "--role", "viewer", "--data-dir", str(tmp_path)]) == 0
    answers = iter(["a typed pass phrase", "another pass phrase"])
    assert cli.main(["user", "add", "bob", "--role", "viewer", "--data-dir", str(tmp_path)]) == 2
    assert "differ" in capsys.readouterr().err


def test_bad_role_is_refused(main: InProcess) -> None:
    result = main("user", "add", "x", "--role", "root")
    assert result.returncode == 2 and "viewer" in result.stderr


def test_database_url_from_the_environment(
    main: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    monkeypatch.setenv("SETPOINT_DATABASE_URL", url)
    result = main("engine-token", "create", "t", "--data-dir", str(tmp_path / "unused"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.sqlite3").exists() and not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--database", "mysql://x@y/z"], ["unsupported database", "mysql"]),
        (["--database", "not a url"], ["database URL"]),
        pytest.param(
            ["--database", "postgresql+psycopg://postgres@127.0.0.1:5432/setpoint_missing_db"],
            ["cannot open database", "does not exist"],
            marks=pytest.mark.postgres,
        ),
    ],
)
def test_bad_database_is_one_line(main: InProcess, args: list[str], words: list[str]) -> None:
    one_line_error(main("serve", *args), *words)


def test_a_database_migrated_by_a_newer_version_is_one_line(
    main: InProcess, tmp_path: Path
) -> None:
    """Upgrading a site one node at a time: the node not yet upgraded must not start on the
    schema the new one migrated to (and must say so, not print Alembic's traceback)."""
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    engine.dispose()
    one_line_error(main("serve", "--database", url), "f00dfeedbeef", "newer aggregator")


def test_unwritable_data_dir_is_one_line(main: InProcess, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(main("serve", "--data-dir", str(blocker / "data")), "data directory")


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_line_error(
            run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path)),
            "already in use",
            str(port),
        )


# --- serve as a process ---------------------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    token: str

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def serve(db_url: str, token: str, *extra: str, data_dir: Path) -> Served:
    """`data_dir` holds the audit key (the database may be elsewhere)."""
    process = subprocess.Popen(
        [*EXE, "serve", "--port", "0", "--database", db_url, "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return Served(process, match.group(1), token)
    process.kill()
    raise AssertionError(f"serve did not start: {process.stdout.read()}")


@pytest.fixture
def served_token(db_url: str) -> str:
    engine = create_db_engine(db_url)
    upgrade(engine)
    token = new_token()
    Storage(engine).create_engine_token("t-" + uuid.uuid4().hex[:6], token_hash(token))
    engine.dispose()
    return token


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.kill()


async def test_serve_binds_loopback_and_stops_on_sigterm(
    db_url: str, served_token: str, tmp_path: Path
) -> None:
    server = serve(db_url, served_token, data_dir=tmp_path)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/api/runs") as r:
            assert r.status == 401
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
    finally:
        server.kill()


async def test_runs_survive_kill_9_of_the_aggregator(
    db_url: str, served_token: str, servers: list[Served], tmp_path: Path
) -> None:
    servers.append(serve(db_url, served_token, data_dir=tmp_path))
    engine = RawEngine(servers[0])
    run_id = "run-" + uuid.uuid4().hex[:8]
    try:
        await engine.register()
        await engine.send(
            p.RunStarted(seq=1, time=1000.0, run_id=run_id, started=1000.0, method_version=1)
        )
        for seq in range(2, 202):
            await engine.send(tags(seq, 1000.0 + seq, run_id))
        await engine.wait_for(p.Ack, lambda a: a.seq >= 150)
        acked = engine.acked()
        servers[0].kill()  # kill -9 mid-stream
        await asyncio.wait_for(engine.closed.wait(), 10)
        await engine.aclose()

        servers.append(serve(db_url, served_token, data_dir=tmp_path))
        engine = RawEngine(servers[1], engine.engine_id)
        registered = await engine.register()
        assert registered.last_seq >= acked, "everything acknowledged was durable"
        for seq in range(registered.last_seq + 1, 202):
            await engine.send(tags(seq, 1000.0 + seq, run_id, historical=True))
        await engine.send(
            p.RunStopped(seq=202, time=1300.0, run_id=run_id, stopped=1300.0, reason="stop")
        )
        await engine.wait_ack(202)
        await engine.aclose()
        servers[1].kill()

        storage = Storage(create_db_engine(db_url))
        run = storage.run_by_id(run_id)
        assert run is not None and run.stop_reason == "stop"
        with storage.engine.connect() as conn:
            [(tag_id, _, _)] = [t for t in storage.run_tags(conn, run.pk) if t[1] == "FT01"]
        samples, _ = storage.read_samples(run.pk, tag_id, 0, 1e10)
        storage.engine.dispose()
        assert [v for _, v in samples] == [float(s) for s in range(2, 202)], (
            "complete, once, in order"
        )
    finally:
        await engine.aclose()


@pytest.mark.parametrize("secure", [False, True])
async def test_secure_cookies_flag_marks_the_session_cookie(
    main: InProcess, db_url: str, served_token: str, secure: bool, tmp_path: Path
) -> None:
    name = "cookie-" + uuid.uuid4().hex[:6]
    add = ["user", "add", name, "--role", "viewer", "--password-stdin", "--database", db_url]
    assert main(*add, stdin="lab pass phrase 7\n").returncode == 0
    server = serve(
        db_url, served_token, *(["--secure-cookies"] if secure else []), data_dir=tmp_path
    )
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{server.url}/api/auth/login",
                json={"username": name, "password": "lab pass phrase 7"},
            ) as r,
        ):
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert ("Secure" in cookie) is secure
    finally:
        server.kill()


# --- passwords, origins and the audit key (issue 13 items 4, 5, 10) ----------------------------


@pytest.mark.parametrize(
    ("password", "words"),
    [("short", ["at least 12"]), (" " * 13, ["whitespace"]), ("iloveyou1234", ["too common"])],
)
def test_user_add_and_passwd_refuse_weak_passwords(
    main: InProcess, db_url: str, password: str, words: list[str]
) -> None:
    name = "weak-" + uuid.uuid4().hex[:6]
    storage = ["--password-stdin", "--database", db_url]
    add = ["user", "add", name, "--role", "viewer", *storage]
    one_line_error(main(*add, stdin=password + "\n"), *words)
    assert main(*add, stdin="a good pass phrase\n").returncode == 0
    one_line_error(main("user", "passwd", name, *storage, stdin=password + "\n"), *words)


def test_passwd_sets_the_password_and_ends_sessions(main: InProcess, db_url: str) -> None:
    name = "pw-" + uuid.uuid4().hex[:6]
    storage = ["--password-stdin", "--database", db_url]
    assert (
        main("user", "add", name, "--role", "viewer", *storage, stdin="first phrase 1\n").returncode
        == 0
    )
    engine = create_db_engine(db_url)
    store = Storage(engine)
    user = store.user_by_name(name)
    assert user is not None
    store.create_session(user.id, token_hash("s1"), 3600.0)
    result = main("user", "passwd", name, *storage, stdin="second phrase 2\n")
    assert result.returncode == 0, result.stderr
    assert store.session_user(token_hash("s1")) is None
    changed = store.user_by_name(name)
    engine.dispose()
    assert changed is not None and changed.password_hash != user.password_hash
    one_line_error(
        main("user", "passwd", "nobody-at-all", *storage, stdin="x phrase 12345\n"), "no user"
    )


def test_the_weak_password_bypass_is_hidden_and_only_explicit(main: InProcess, db_url: str) -> None:
    assert "allow-weak" not in main("user", "add", "--help").stdout
    add = ["user", "add", "demo-" + uuid.uuid4().hex[:6], "--role", "admin", "--password-stdin"]
    add += ["--database", db_url]
    one_line_error(main(*add, stdin="demo\n"), "at least 12")
    assert main(*add, "--allow-weak-password", stdin="demo\n").returncode == 0


def test_bad_allowed_origin_is_one_line(main: InProcess, tmp_path: Path) -> None:
    args = ["serve", "--data-dir", str(tmp_path), "--allowed-origin", "lab.example.org"]
    one_line_error(main(*args), "--allowed-origin", "lab.example.org")


def test_serve_creates_the_audit_key_owner_only_and_verify_needs_it(
    main: InProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    one_line_error(
        main("audit", "verify", "--database", url, "--data-dir", str(data)), "no audit key"
    )
    engine = create_db_engine(url)
    upgrade(engine)
    key = cli.audit_key_for_serving(data, engine)
    assert cli.audit_key_for_serving(data, engine) == key  # kept across starts
    engine.dispose()
    assert (data / "audit.key").stat().st_mode & 0o777 == 0o600
    ok = main("audit", "verify", "--database", url, "--data-dir", str(data))
    assert ok.returncode == 0 and "intact" in ok.stdout
    (tmp_path / "bad.key").write_text("not hex\n")
    bad = ["audit", "verify", "--database", url, "--audit-key", str(tmp_path / "bad.key")]
    one_line_error(main(*bad), "not a key")
