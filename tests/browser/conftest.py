"""Fixtures for the browser tests: a real aggregator and a simulated engine as subprocesses, and
Debian's Chromium driven by Playwright for Python.

Every process started here is stopped by its PID in teardown. The web UI must be built
(`npm ci && npm run build` in frontend/); the aggregator serves frontend/dist at `/`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
DIST = ROOT / "frontend" / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UOD = ROOT / "uod_examples" / "chromatography.py"
METHOD = ROOT / "uod_examples" / "chromatography.pcode"

USERS = {"alice": ("admin", "alice-secret-1"), "bob": ("operator", "bob-secret-12")}


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    """Poll a condition (no fixed sleeps in tests; this is the fixture's readiness wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            value = condition()
        except (OSError, urllib.error.URLError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"timed out waiting for {what}\n{tail}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM by PID, then SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class Stack:
    """The running aggregator and engine of one test module: by default the chromatography
    example; a module may run another UOD and method (its unit named `unit_name`)."""

    tmp: Path
    port: int
    engine_token: str
    uod: Path = UOD
    method: Path = METHOD
    unit_name: str = "Chromatography"
    aggregator: subprocess.Popen[bytes] | None = None
    engine: subprocess.Popen[bytes] | None = None
    unit_id: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def login(self, name: str) -> str:
        return str(
            self.http("POST", "/api/auth/login", {"username": name, "password": USERS[name][1]})[
                "token"
            ]
        )

    def start_aggregator(self) -> None:
        log = self.tmp / "aggregator.log"
        out = log.open("ab")
        self.aggregator = subprocess.Popen(
            [
                _tool("setpoint-aggregator"),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.tmp / "agg"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.procs.append(self.aggregator)
        wait_for(
            lambda: urllib.request.urlopen(self.base_url + "/", timeout=1).status == 200,
            30,
            "aggregator to serve /",
            self.aggregator,
            log,
        )

    def stop_aggregator(self) -> None:
        if self.aggregator is not None:
            stop_process(self.aggregator)

    def start_engine(self) -> None:
        log = self.tmp / "engine.log"
        self.engine = subprocess.Popen(
            [
                _tool("setpoint-engine"),
                "run",
                "--uod",
                str(self.uod),
                "--method",
                str(self.method),
                "--aggregator",
                f"ws://127.0.0.1:{self.port}",
                "--token",
                self.engine_token,
                "--data-dir",
                str(self.tmp / "engine"),
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.procs.append(self.engine)

    def wait_unit_online(self, timeout: float = 30) -> str:
        token = self.login("alice")

        def online() -> str | None:
            units = self.http("GET", "/api/units", token=token)
            for u in units:
                if u.get("online") and u.get("name") == self.unit_name:
                    return str(u["id"])
            return None

        self.unit_id = wait_for(
            online, timeout, "the engine's unit to be online", self.engine, self.tmp / "engine.log"
        )
        return self.unit_id

    def close(self) -> None:
        # Engine first (it flushes to the aggregator on SIGTERM), then the aggregator.
        for proc in reversed(self.procs):
            stop_process(proc)


def _ensure_built() -> None:
    if (DIST / "index.html").is_file():
        return
    frontend = ROOT / "frontend"
    npm = shutil.which("npm")
    if npm and (frontend / "node_modules").is_dir():
        subprocess.run([npm, "run", "build"], cwd=frontend, check=True)
    if not (DIST / "index.html").is_file():
        pytest.skip("web UI not built: run `npm ci && npm run build` in frontend/")


def require_browser() -> None:
    """Skip unless Chromium is installed and the web UI is built (built here when it can be)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's Chromium is not installed: apt-get install -y chromium")
    _ensure_built()


@contextmanager
def running_stack(tmp: Path, token_name: str, **engine: Any) -> Iterator[Stack]:
    """USERS and an engine token in a fresh aggregator data directory under `tmp`, then the
    aggregator and the engine started and its unit online; both stopped on exit. `engine`:
    Stack's uod, method and unit_name, for a module that runs another unit."""
    agg_dir = tmp / "agg"
    agg_dir.mkdir()
    agg = _tool("setpoint-aggregator")
    for name, (role, password) in USERS.items():
        subprocess.run(
            [
                agg,
                "user",
                "add",
                name,
                "--role",
                role,
                "--password-stdin",
                "--data-dir",
                str(agg_dir),
            ],
            input=f"{password}\n".encode(),
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    created = subprocess.run(
        [agg, "engine-token", "create", token_name, "--data-dir", str(agg_dir)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    token = created.stdout.decode().strip().splitlines()[-1].strip()
    s = Stack(tmp=tmp, port=free_port(), engine_token=token, **engine)
    try:
        s.start_aggregator()
        s.start_engine()
        s.wait_unit_online()
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_browser()
    with running_stack(tmp_path_factory.mktemp("stack"), "browser-test") as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's Chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Shots:
    """Screenshots of a test, numbered in the order taken, in test-artifacts/<test name>/."""

    def __init__(self, test_name: str) -> None:
        self.dir = ARTIFACTS / test_name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def __call__(self, page: Any, name: str, full_page: bool = True) -> Path:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{name}.png"
        if not full_page:
            page.screenshot(path=str(path))
            return path
        # Grow the viewport to the page and let the page lay out (the editor measures its lines
        # in an animation frame) before taking the picture, then put the viewport back.
        size = page.viewport_size
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page.screenshot(path=str(path))
        page.set_viewport_size(size)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def new_page(
    browser: Any, stack: Stack, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Pages in fresh contexts (separate sessions); console errors are collected per page."""
    contexts: list[Any] = []

    def make(width: int = 1366, height: int = 768, **kw: Any) -> Any:
        ctx = browser.new_context(
            viewport={"width": width, "height": height},
            base_url=stack.base_url,
            accept_downloads=True,
            **kw,
        )
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def login(page: Any, name: str) -> None:
    page.goto("/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(USERS[name][1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Units").wait_for()
