"""One real aggregator and real `setpoint-engine run` processes, set up through the installed
console scripts, for benchmarks that measure the product from outside.

Imported from the scripts' directory like serve_proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from serve_proc import SCRIPT, start_serve

BIN = Path(sys.executable).parent
USER = "bench"
PASSWORD = "bench-password"


class LocalSite:
    """An aggregator in `tmp`/agg with one admin user, and the engines started against it, all
    running `src`'s code with this venv, so that another checkout can be measured the same way.

    `env` is added to every process's environment (e.g. a cache directory of the benchmark's
    own, so that a cold start is cold)."""

    def __init__(self, tmp: Path, src: Path, env: Mapping[str, str] | None = None) -> None:
        self.tmp = tmp
        self.src = src
        self.env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.data = ["--data-dir", str(tmp / "agg")]
        self.base = ""
        self.session = ""
        self.engine_token = ""
        """Empty: each engine() creates one, inside whatever the caller is timing."""
        self.processes: list[subprocess.Popen[Any]] = []

    def cli(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [str(BIN / "setpoint-aggregator"), *args, *self.data],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
            cwd=self.src,
        ).stdout

    def new_engine_token(self) -> str:
        return self.cli("engine-token", "create", "bench").split()[-1]

    def serve(self) -> None:
        self.cli("user", "add", USER, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
        process, self.base = start_serve(
            *self.data, command=SCRIPT, stderr=subprocess.DEVNULL, env=self.env, cwd=self.src
        )
        self.processes.append(process)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    async def login(self, http: aiohttp.ClientSession) -> None:
        async with http.post(
            self.base + "/api/auth/login", json={"username": USER, "password": PASSWORD}
        ) as response:
            self.session = (await response.json(content_type=None))["token"]

    def engine(
        self, aggregator: str, method: Path, *, start: bool = False, profile: Path | None = None
    ) -> subprocess.Popen[Any]:
        """`setpoint-engine run` of the chromatography example connected to `aggregator` (a ws://
        URL: the site's own, or a proxy in front of it), its stderr appended to `tmp`/engine.log.
        All engines share `tmp`/engine, as restarts of one engine on a lab PC do."""
        token = self.engine_token or self.new_engine_token()
        command = [str(BIN / "setpoint-engine")]
        if profile is not None:  # cProfile.run dumps the profile at SystemExit too
            boot = f"import cProfile; cProfile.run('from engine.cli import main; main()', {str(profile)!r})"
            command = [sys.executable, "-c", boot]
        process = subprocess.Popen(
            [
                *command,
                "run",
                "--uod",
                str(self.src / "uod_examples/chromatography.py"),
                "--method",
                str(method),
                *(["--start"] if start else []),
                "--aggregator",
                aggregator,
                "--data-dir",
                str(self.tmp / "engine"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "engine.log", "ab"),  # noqa: SIM115
            env={**self.env, "SETPOINT_ENGINE_TOKEN": token},
            cwd=self.tmp,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Ends every process started here, the newest first (the engines before their
        aggregator)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
