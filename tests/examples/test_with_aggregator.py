"""`setpoint-engine run --aggregator`: the example unit reports a run to a real aggregator, and
SIGTERM stops the run and flushes it before the engine exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.examples.processes import stop
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery"


def _wait(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("condition not reached")


@contextmanager
def served_aggregator(data: Path, username: str, role: str) -> Iterator[tuple[int, str, str]]:
    """A fresh `setpoint-aggregator serve` on a free port, set up through its CLI with an engine
    token and one user, who is logged in: (port, engine token, user bearer token)."""
    tool = str(BIN / "setpoint-aggregator")
    created = subprocess.run(
        [tool, "engine-token", "create", "lab", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    engine_token = created.stdout.strip().splitlines()[-1]
    subprocess.run(
        [
            tool,
            "user",
            "add",
            username,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
            str(data),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [tool, "serve", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        _wait(lambda: "listening" in server.stdout.readline())  # type: ignore[union-attr]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login",
            data=json.dumps({"username": username, "password": PASSWORD}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            bearer = json.load(response)["token"]
        yield port, engine_token, bearer
    finally:
        stop(server, timeout=15)


@pytest.fixture
def aggregator(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(ws url, engine token, user bearer token) of a fresh aggregator."""
    with served_aggregator(tmp_path / "agg", "admin", "admin") as (port, engine_token, bearer):
        yield f"ws://127.0.0.1:{port}", engine_token, bearer


def _get(url: str, bearer: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_engine_reports_a_run_and_stops_it_on_sigterm(
    aggregator: tuple[str, str, str], tmp_path: Path
) -> None:
    ws, token, bearer = aggregator
    http = ws.replace("ws://", "http://")
    engine = subprocess.Popen(
        [
            str(BIN / "setpoint-engine"),
            "run",
            "--uod",
            "uod_examples/chromatography.py",
            "--method",
            "uod_examples/chromatography.pcode",
            "--start",
            "--aggregator",
            ws,
            "--data-dir",
            str(tmp_path / "engine"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SETPOINT_ENGINE_TOKEN": token},
    )
    try:

        def running_run() -> Any:
            runs = _get(f"{http}/api/runs", bearer)["items"]
            return runs and runs[0]["sample_count"] >= 2 and runs[0]

        run = _wait(running_run)
        assert run["stopped"] is None
        units = _get(f"{http}/api/units", bearer)
        assert units[0]["online"] and units[0]["state"] == "Running"
        os.kill(engine.pid, signal.SIGTERM)
        _out, err = engine.communicate(timeout=30)
        assert engine.returncode == 0, err
        assert "Traceback" not in err
        stopped = _wait(lambda: _get(f"{http}/api/runs", bearer)["items"][0]["stopped"])
        assert stopped >= run["started"]
        assert _get(f"{http}/api/runs", bearer)["items"][0]["stop_reason"] == "Stop"
    finally:
        stop(engine, timeout=15)
