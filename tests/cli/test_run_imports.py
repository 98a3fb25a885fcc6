"""What a running engine has imported (issue 15 item 3: start-up CPU and memory).

`setpoint-engine run` of the simulated example with an aggregator link, stopped at the point
where the scan loop would begin: no hardware driver library (pymodbus, pyserial, asyncua) is
loaded for simulated hardware, and the link does not pull in aiohttp (the engine's websocket
client is its own: aiohttp cost ~0.1 s and ~8 MB at every start), nor pint (its units are in the
unit table: pint cost ~5.6 MB). Checked in a child process, through sys.modules, so that this
test process's own imports do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.cli.conftest import EXAMPLES, REPO
from tests.net import free_port

SCRIPT = r"""
import json, os, sys
import engine.runner

async def stop_here(engine, clock, stop, **kwargs):
    roots = sorted({name.split(".")[0] for name in sys.modules})
    print(json.dumps(roots), flush=True)
    os._exit(0)

engine.runner.run_realtime = stop_here
from engine.cli import main
main(sys.argv[1:])
"""

NOT_FOR_A_SIMULATED_UNIT = {"aiohttp", "yarl", "multidict", "pymodbus", "serial", "asyncua"}


def test_a_simulated_engine_with_a_link_imports_no_driver_and_no_aiohttp(tmp_path: object) -> None:
    argv = [
        sys.executable,
        "-c",
        SCRIPT,
        "run",
        "--uod",
        str(EXAMPLES / "chromatography.py"),
        "--method",
        str(EXAMPLES / "chromatography.pcode"),
        "--aggregator",
        f"ws://127.0.0.1:{free_port()}",  # nobody there: the link retries, the engine runs
        "--data-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "SETPOINT_ENGINE_TOKEN": "a-token"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    roots = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "engine" in roots and "protocol" in roots  # the run path did run
    assert roots & NOT_FOR_A_SIMULATED_UNIT == set()
    assert "pint" not in roots  # the example's units are all in engine/lang/unit_table.py
