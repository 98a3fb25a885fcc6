"""`setpoint-engine run` on the OPC UA skid, ended by a signal, leaves the SERVER's nodes at their
safe values: the test reads the nodes with its own asyncua client, never the engine's tags."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua.client.client import Client

from engine.simdev import opcua_map
from tests.cli.conftest import EXAMPLES, Running, free_port, tool
from tests.faults.test_safe_shutdown import SIGNALS, _start

pytestmark = pytest.mark.slow

logging.getLogger("asyncua").setLevel(logging.CRITICAL + 1)


@pytest.fixture
def processes() -> Iterator[list[Running]]:
    started: list[Running] = []
    try:
        yield started
    finally:
        for running in reversed(started):
            running.kill()


async def _setpoints(url: str) -> tuple[float, str]:
    async with Client(url, timeout=5) as client:
        pump = await client.get_node(opcua_map.NODE_IDS["PU01"]).read_value()
        inlet = await client.get_node(opcua_map.NODE_IDS["Inlet"]).read_value()
    return round(float(pump), 3), str(inlet)


async def _until(url: str, wanted: tuple[float, str], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (held := await _setpoints(url)) != wanted:
        assert loop.time() < deadline, f"the server holds {held}, not {wanted}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
async def test_signal_leaves_the_opcua_server_safe(
    signum: int, processes: list[Running], tmp_path: Path
) -> None:
    port = free_port()
    sim = _start(
        processes,
        [tool("setpoint-sim"), "opcua", "--model", "chromatography", "--port", str(port)],
    )
    line = sim.wait_line("^opcua device: ", stream="stdout", timeout=30.0)
    url = opcua_map.url("127.0.0.1", port)
    assert line.startswith(f"opcua device: {url} ")
    engine = _start(
        processes,
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography_opcua.py"),
            "--method",
            str(EXAMPLES / "chromatography_opcua.pcode"),
            "--start",
        ],
        env={"SETPOINT_OPCUA_URL": url},
        cwd=tmp_path,
    )
    await _until(url, (100.0, "VA01"))  # the method's first block runs the pump
    os.kill(engine.proc.pid, signum)
    assert await asyncio.to_thread(engine.proc.wait, 30) == 0
    assert await _setpoints(url) == (0.0, "None")
    engine.wait_line(r"safe values confirmed for 2 output\(s\)")
    engine.wait_line(r"run \S+ stopped", stream="stdout")


@pytest.mark.parametrize("aggregator", [False, True], ids=["standalone", "aggregator"])
def test_units_that_differ_from_the_server_stop_the_engine_at_start(
    aggregator: bool, processes: list[Running], tmp_path: Path
) -> None:
    """With --aggregator the link never started: the shutdown must not trip over it."""
    port = free_port()
    sim = _start(
        processes,
        [tool("setpoint-sim"), "opcua", "--model", "chromatography", "--port", str(port)],
    )
    sim.wait_line("^opcua device: ", stream="stdout", timeout=30.0)
    uod = tmp_path / "wrong_units.py"
    uod.write_text(
        (EXAMPLES / "chromatography_opcua.py")
        .read_text()
        .replace('uod.reading("FT01", unit="L/h"', 'uod.reading("FT01", unit="L/min"')
    )
    extra: list[str] = []
    if aggregator:
        token = tmp_path / "token"
        token.write_text("nobody-checks-it\n")
        extra = ["--aggregator", f"ws://127.0.0.1:{free_port()}", "--token-file", str(token)]
    engine = _start(
        processes,
        [tool("setpoint-engine"), "run", "--uod", str(uod), *extra],
        env={"SETPOINT_OPCUA_URL": opcua_map.url("127.0.0.1", port)},
        cwd=tmp_path,
    )
    assert engine.proc.wait(30) != 0
    engine.wait_line(
        r"cannot start the hardware: OPC UA opc\.tcp://\S+: tag 'FT01': the server's unit is "
        r"'L/h', the UOD declares 'L/min'$"
    )
    for reader in engine._readers:
        reader.join(5)
    assert not any("Traceback" in line for line in engine.stderr), engine.stderr
