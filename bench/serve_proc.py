"""Start a `setpoint-aggregator serve` process for a benchmark and wait until it listens.

The bench scripts import this from their own directory (Python puts a script's directory first
on sys.path).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

MODULE = [sys.executable, "-m", "aggregator.cli", "serve"]
"""`serve` as `python -m aggregator.cli`: with cwd/PYTHONPATH, the code of another tree."""
SCRIPT = [str(Path(sys.executable).parent / "setpoint-aggregator"), "serve"]
"""`serve` through this venv's console script (it runs aggregator.cli:main)."""


def start_serve(
    *args: str,
    command: Sequence[str] = MODULE,
    stderr: int | IO[Any] | None = subprocess.STDOUT,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """`command --port 0 *args` (stdout piped, as text; stderr into it, or `stderr` as for Popen:
    None inherits this process's); returns the process and its base URL
    (http://127.0.0.1:PORT) once it has printed its `listening on` line. If it exits before that,
    RuntimeError; if the wait is interrupted, the process is killed (the caller has no handle)."""
    process = subprocess.Popen(
        [*command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    try:
        while line := process.stdout.readline():
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                return process, match.group(1)
        raise RuntimeError(f"the aggregator exited before listening (exit code {process.wait(10)})")
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
