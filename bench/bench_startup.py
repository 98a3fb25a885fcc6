"""Engine process cost against the design targets: time from process start to "online" at the
aggregator, resident memory and CPU while running an example UOD. Prints one JSON object.

Usage: .venv/bin/python bench/bench_startup.py [--uod uod_examples/chromatography.py] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from serve_proc import SCRIPT, start_serve

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"
"""The admin's password (the aggregator refuses one shorter than 12 characters)."""


def _cli(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def _api(base: str, path: str, token: str = "", body: object | None = None) -> Any:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode() if body is not None else None
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uod", default=str(ROOT / "uod_examples/chromatography.py"))
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU/memory sampling time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = ["--data-dir", tmp]
        _cli(
            "setpoint-aggregator",
            "user",
            "add",
            "bench",
            "--role",
            "admin",
            "--password-stdin",
            *data,
            stdin=PASSWORD + "\n",
        )
        engine_token = _cli(
            "setpoint-aggregator", "engine-token", "create", "bench", *data
        ).split()[-1]
        aggregator, base = start_serve(*data, command=SCRIPT, stderr=subprocess.DEVNULL)
        engine: subprocess.Popen[bytes] | None = None
        try:
            token = _api(base, "/api/auth/login", body={"username": "bench", "password": PASSWORD})[
                "token"
            ]
            started = time.monotonic()
            engine = subprocess.Popen(
                [
                    str(BIN / "setpoint-engine"),
                    "run",
                    "--uod",
                    args.uod,
                    "--aggregator",
                    base.replace("http", "ws"),
                    "--token",
                    engine_token,
                    "--data-dir",
                    str(Path(tmp) / "engine"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while not any(u["online"] for u in _api(base, "/api/units", token)):
                time.sleep(0.01)
            online_after = time.monotonic() - started
            time.sleep(2.0)  # let start-up work finish before sampling the steady state
            cpu0, t0 = _cpu_seconds(engine.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu_percent = 100 * (_cpu_seconds(engine.pid) - cpu0) / (time.monotonic() - t0)
            rss = _rss_mb(engine.pid)
        finally:
            for process in (engine, aggregator):
                if process is not None:
                    process.terminate()
                    process.wait(20)
    print(
        json.dumps(
            {
                "uod": Path(args.uod).name,
                "online_after_start_s": round(online_after, 3),
                "engine_cpu_percent_of_one_core": round(cpu_percent, 2),
                "engine_rss_mb": round(rss, 1),
                "sampled_seconds": args.seconds,
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
