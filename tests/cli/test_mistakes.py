"""Common mistakes, made with the real commands: each gives one line saying what to do.

No traceback, no library noise, and for the ones the engine lives through (an aggregator or a
device that is not there) the line comes once, not at every retry, while the engine keeps going.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLES, Listener, Running, free_port, run_once, tool


def only_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def engine_lines(running: Running, needle: str) -> list[str]:
    return [line for line in running.stderr if needle in line]


def assert_no_noise(running: Running) -> None:
    """Everything on stderr is the engine's own one-liners: no traceback, no library logger."""
    strays = [line for line in running.stderr if not line.startswith("setpoint-engine: ")]
    assert strays == []


# ---- the aggregator -------------------------------------------------------------------------


@pytest.fixture
def aggregator(
    start: Callable[..., Running], tmp_path: Path
) -> Iterator[tuple[Running, str, Path]]:
    data = tmp_path / "aggregator"
    running = start(
        [tool("setpoint-aggregator"), "serve", "--port", "0", "--data-dir", str(data)],
        cwd=tmp_path,
    )
    line = running.wait_line(r"listening on http://", stream="stdout", timeout=30)
    port = re.search(r":(\d+)$", line)
    assert port is not None
    yield running, f"ws://127.0.0.1:{port.group(1)}", data
    running.interrupt()


def test_aggregator_port_in_use(busy_port: int, tmp_path: Path) -> None:
    done = run_once(
        [
            tool("setpoint-aggregator"),
            "serve",
            "--port",
            str(busy_port),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert done.returncode == 2
    assert only_line(done.stderr) == (
        f"setpoint-aggregator: error: port {busy_port} on 127.0.0.1 is already in use (another "
        "aggregator or `make demo`?); stop that or choose another port with --port"
    )


def test_aggregator_database_url_unparseable(tmp_path: Path) -> None:
    done = run_once(
        [tool("setpoint-aggregator"), "serve", "--port", "0", "--database", "setpoint.db"],
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert only_line(done.stderr) == (
        "setpoint-aggregator: error: cannot parse database URL 'setpoint.db'; use "
        "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/NAME"
    )


def test_aggregator_database_in_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no-such-dir/setpoint.sqlite3"
    done = run_once([tool("setpoint-aggregator"), "serve", "--port", "0", "--database", url])
    assert done.returncode == 2
    assert only_line(done.stderr) == (
        f"setpoint-aggregator: error: cannot open database {url}: unable to open database file "
        "(does its directory exist, and may this user write there?)"
    )


# ---- the simulators -------------------------------------------------------------------------


def test_sim_modbus_port_in_use(busy_port: int) -> None:
    done = run_once(
        [tool("setpoint-sim"), "modbus", "--model", "chromatography", "--port", str(busy_port)]
    )
    assert done.returncode == 1
    assert only_line(done.stderr) == (
        f"setpoint-sim: error: cannot listen on 127.0.0.1:{busy_port}: the port is already in "
        "use (another setpoint-sim or `make demo`?); stop that or pick another with --port"
    )


# ---- the engine: files ----------------------------------------------------------------------


def test_engine_uod_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "unit.py"
    done = run_once([tool("setpoint-engine"), "run", "--uod", str(missing)])
    assert done.returncode == 2
    assert only_line(done.stderr) == f"setpoint-engine: error: {missing}: UOD file not found"


def test_engine_uod_file_broken(tmp_path: Path) -> None:
    broken = tmp_path / "unit.py"
    broken.write_text(
        "from engine.uod import UodBuilder\n\ndef create():\n    uod = UodBuilder('x'\n"
    )
    done = run_once([tool("setpoint-engine"), "run", "--uod", str(broken)])
    assert done.returncode == 2
    assert only_line(done.stderr) == (
        f"setpoint-engine: error: {broken}:4: syntax error: '(' was never closed"
    )


# ---- the engine and its aggregator ----------------------------------------------------------


def test_engine_aggregator_unreachable(start: Callable[..., Running], tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    engine = start(
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography.py"),
            "--aggregator",
            f"ws://127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / "engine"),
        ],
        env={"SETPOINT_ENGINE_TOKEN": "not-checked-here"},
    )
    line = engine.wait_line("cannot reach the aggregator")
    assert line == (
        f"setpoint-engine: cannot reach the aggregator at ws://127.0.0.1:{port}/engine/ws: "
        "connection refused; is `setpoint-aggregator serve` running there? The engine keeps "
        f"running and retries; data waits in {tmp_path / 'engine' / 'outbox.sqlite3'}"
    )
    assert engine.proc.poll() is None, "the engine keeps running without its aggregator"
    assert engine.interrupt() == 0
    assert_no_noise(engine)


def test_engine_aggregator_unreachable_said_once(
    start: Callable[..., Running], listener: Listener, tmp_path: Path
) -> None:
    """A port that answers but is no aggregator: the engine retries, the user hears it once."""
    engine = start(
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography.py"),
            "--aggregator",
            f"ws://127.0.0.1:{listener.port}",
            "--data-dir",
            str(tmp_path / "engine"),
        ],
        env={"SETPOINT_ENGINE_TOKEN": "not-checked-here"},
    )
    engine.wait_line("cannot reach the aggregator")
    listener.wait_accepted(4)
    engine.kill()
    assert len(engine_lines(engine, "cannot reach the aggregator")) == 1
    assert_no_noise(engine)


def test_engine_wrong_token(
    start: Callable[..., Running], aggregator: tuple[Running, str, Path], tmp_path: Path
) -> None:
    server, url, _ = aggregator
    engine = start(
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography.py"),
            "--aggregator",
            url,
            "--token",
            "a-token-nobody-created",
            "--data-dir",
            str(tmp_path / "engine"),
        ]
    )
    line = engine.wait_line("refused the engine token")
    assert line == (
        f"setpoint-engine: the aggregator at {url}/engine/ws refused the engine token (HTTP "
        "401); create one there with `setpoint-aggregator engine-token create NAME` and pass it "
        "with --token or SETPOINT_ENGINE_TOKEN. The engine keeps running and retries; data "
        f"waits in {tmp_path / 'engine' / 'outbox.sqlite3'}"
    )
    # The aggregator logs each refusal: wait for two retries, then count the engine's lines.
    server.wait_count("unknown engine token", 3)
    engine.kill()
    assert len(engine_lines(engine, "refused the engine token")) == 1
    assert_no_noise(engine)


# ---- the engine and its instruments ---------------------------------------------------------


def test_engine_modbus_device_unreachable(start: Callable[..., Running]) -> None:
    port = free_port()  # nothing listens there
    engine = start(
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography_modbus.py"),
            "--method",
            str(EXAMPLES / "chromatography_modbus.pcode"),
        ],
        env={"SETPOINT_MODBUS_HOST": "127.0.0.1", "SETPOINT_MODBUS_PORT": str(port)},
    )
    line = engine.wait_line("Modbus device")
    assert line == (
        f"setpoint-engine: cannot connect to the Modbus device at 127.0.0.1:{port} (from "
        "SETPOINT_MODBUS_HOST, SETPOINT_MODBUS_PORT); check that it is on and reachable from "
        "this PC, or start the simulator: setpoint-sim modbus --model chromatography --port "
        f"{port}; the engine keeps retrying"
    )
    engine.wait_line("connection Reconnect", stream="stdout")  # the first retry is scheduled
    assert engine.interrupt() == 3  # EXIT_UNSAFE: nobody could put the device's outputs safe
    assert any("NOT SAFE: PU01" in line for line in engine.stderr)
    assert len(engine_lines(engine, "Modbus device")) == 1
    assert_no_noise(engine)  # no "Failed to connect ... Repeating...." from pymodbus


def test_engine_serial_port_missing(start: Callable[..., Running], tmp_path: Path) -> None:
    balance = start(
        [tool("setpoint-sim"), "serial", "--profile", "balance", "--state-dir", str(tmp_path)]
    )
    device = balance.wait_line(r"^serial device: ", stream="stdout").split(": ", 1)[1]
    engine = start(
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "dosing.py"),
            "--method",
            str(EXAMPLES / "dosing.pcode"),
        ],
        env={"SETPOINT_PUMP_PORT": "/dev/nonexistent", "SETPOINT_BALANCE_PORT": device},
    )
    line = engine.wait_line("/dev/nonexistent")
    assert line == (
        "setpoint-engine: pump /dev/nonexistent: serial port /dev/nonexistent (from "
        "SETPOINT_PUMP_PORT) does not exist; check the port name (Linux: /dev/ttyUSB0, Windows: "
        "COM3) or start a simulated instrument with `setpoint-sim serial --profile pump` and use "
        "the port it prints; the engine keeps retrying"
    )
    engine.wait_line("connection Reconnect", stream="stdout")
    assert engine.interrupt() == 3  # EXIT_UNSAFE: the pump's safe values could not be sent
    assert any("NOT SAFE: Pump Speed" in line for line in engine.stderr)
    assert len(engine_lines(engine, "does not exist; check the port name")) == 1
    assert_no_noise(engine)
