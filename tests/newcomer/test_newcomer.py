"""A newcomer's first ten minutes, automated: clone, `make demo`, run the method, stop, check.

This runs the documented set-up in a fresh clone (its own virtual environment and web-UI build),
so it is the slowest test in the suite; pip's and npm's caches keep it to a few minutes once warm.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
SETUP_TIMEOUT = 900.0


def wait_until(
    what: str,
    condition: Callable[[], Any],
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"process exited with {process.returncode} while waiting for {what}"
            )
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw and path.rsplit("/", 1)[-1] != "csv" else raw.decode()

    def try_login(self) -> bool:
        try:
            self.token = self.call(
                "POST", "/api/auth/login", {"username": "demo", "password": "demo"}
            )["token"]
        except OSError:
            return False
        return True

    def units(self) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self.call("GET", "/api/units")
        except OSError:
            return []
        return result


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "setpoint"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    yield target


@pytest.mark.newcomer
@pytest.mark.timeout(SETUP_TIMEOUT + 400)
def test_clone_demo_run_and_csv(clone: Path, tmp_path: Path) -> None:
    port, modbus_port, opcua_port = free_port(), free_port(), free_port()
    log = (tmp_path / "demo.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PYTHON"] = sys.executable
    demo = subprocess.Popen(
        [
            "make",
            "demo",
            f"DEMO_ARGS=--port {port} --modbus-port {modbus_port} --opcua-port {opcua_port}",
        ],
        cwd=clone,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    api = Api(f"http://127.0.0.1:{port}")
    try:
        wait_until("the aggregator to accept the demo login", api.try_login, SETUP_TIMEOUT, demo)

        def both_online() -> list[dict[str, Any]] | None:
            online = [u for u in api.units() if u["online"]]
            return online if len(online) == 3 else None

        units = wait_until("both units online", both_online, 120, demo)
        chrom = next(u for u in units if u["name"] == "Chromatography Modbus")
        unit_path = "/api/units/" + urllib.parse.quote(chrom["id"], safe="")

        assert api.call("POST", f"{unit_path}/control", {"action": "Start"})["ok"] is True
        run_id = wait_until(
            "the run to start", lambda: api.call("GET", unit_path)["run_id"], 30, demo
        )
        wait_until(
            "the method to run to completion",
            lambda: api.call("GET", unit_path)["state"] == "Stopped",
            400,
            demo,
        )
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
            log.close()
    output = (tmp_path / "demo.log").read_text()
    assert "Setpoint demo is running" in output
    assert "Demo stopped; nothing left running." in output

    # The run survives the demo: a new aggregator on the same data directory serves it.
    serve_port = free_port()
    aggregator = subprocess.Popen(
        [
            str(clone / ".venv/bin/setpoint-aggregator"),
            "serve",
            "--port",
            str(serve_port),
            "--data-dir",
            str(clone / "demo-data"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = Api(f"http://127.0.0.1:{serve_port}")
        wait_until("the aggregator to restart", api.try_login, 30, aggregator)
        runs = api.call("GET", "/api/runs?unit_id=" + urllib.parse.quote(chrom["id"], safe=""))[
            "items"
        ]
        run = next(r for r in runs if r["id"] == run_id)
        assert run["stopped"] is not None
        detail = api.call("GET", f"/api/runs/{run_id}")
        lines = detail["runlog"]
        assert any(line["text"] == "Stop" for line in lines)
        text = api.call("GET", f"/api/runs/{run_id}/csv")
    finally:
        aggregator.terminate()
        aggregator.wait(timeout=30)

    metadata = [line for line in text.splitlines() if line.startswith("#")]
    assert any(run_id in line for line in metadata)
    rows = list(
        csv.reader(
            io.StringIO("\n".join(line for line in text.splitlines() if not line.startswith("#")))
        )
    )
    header, body = rows[0], rows[1:]
    assert header[:2] == ["UTC timestamp", "Run Time"]
    tag_names = {tag["name"] for tag in detail["uod"]["tags"]}
    for tag in ("FT01", "PT01", "UV01", "CT01"):
        assert tag in tag_names
        assert any(column.startswith(f"{tag} [") for column in header), header
    duration = run["stopped"] - run["started"]
    # one row per data-log interval (1 s) while the values change: no hole in the stored run
    assert len(body) >= 0.9 * duration, (len(body), duration)
    run_times = [float(row[1]) for row in body]
    assert run_times == sorted(run_times)
    assert max(b - a for a, b in itertools.pairwise(run_times)) <= 2.5
    assert all(len(row) == len(header) for row in body)
