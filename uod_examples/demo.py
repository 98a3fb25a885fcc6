"""`python -m uod_examples.demo`: the whole of Setpoint on one laptop, started by `make demo`.

It starts, as separate processes and in this order: an aggregator on SQLite in a local data
directory, the Modbus and OPC UA device simulators for the chromatography skid, the serial
balance and pump simulators for the dosing unit, and one engine per unit, each with its own engine
token. It waits until every unit is online, prints the URL and the demo login, and on Ctrl-C stops
everything it started (engines first, so they can flush their outboxes), by PID.

The demo only drives the command-line tools; it imports neither the engine nor the aggregator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

EXAMPLES = Path(__file__).resolve().parent
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
STEPS = 6


class DemoError(Exception):
    """A step failed; the message says what to do."""


@dataclass
class Processes:
    """Every process the demo started, so that it stops exactly those."""

    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        process = subprocess.Popen(
            list(argv),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        handle.close()
        self.started.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise DemoError(
                    f"{name} exited with code {process.returncode}; see its log in the data directory"
                )

    def stop_all(self, grace: float = 15.0) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                process.kill()
                process.wait()
        self.started.clear()


def step(number: int, text: str) -> None:
    print(f"==> [{number}/{STEPS}] {text}", flush=True)


def tool(name: str) -> str:
    """The console script installed beside this Python (the demo's virtual environment)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(what: str, condition: object, timeout: float, processes: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_tool(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)


def ensure_demo_user(data_dir: Path) -> None:
    result = run_tool(
        [
            tool("setpoint-aggregator"),
            "user",
            "add",
            DEMO_USER,
            "--role",
            "admin",
            "--password-stdin",
            "--allow-weak-password",  # the demo's "demo" only: a real user gets the policy
            "--data-dir",
            str(data_dir),
        ],
        stdin=DEMO_PASSWORD + "\n",
    )
    if result.returncode != 0 and "exists" not in (result.stderr + result.stdout):
        raise DemoError(
            f"could not create the demo user: {(result.stderr or result.stdout).strip()}"
        )


def new_engine_token(data_dir: Path, name: str) -> str:
    result = run_tool(
        [tool("setpoint-aggregator"), "engine-token", "create", name, "--data-dir", str(data_dir)]
    )
    if result.returncode != 0:
        raise DemoError(
            f"could not create an engine token: {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout.strip().splitlines()[-1].split()[-1]


def login(base: str) -> str | None:
    body = json.dumps({"username": DEMO_USER, "password": DEMO_PASSWORD}).encode()
    request = urllib.request.Request(
        f"{base}/api/auth/login", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            token = json.load(response)["token"]
            return str(token)
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


DEMO_NOTIFICATIONS = {
    "email": "demo@localhost",
    "email_enabled": True,
    "rules": [
        {
            "alarm_priority": "high",
            "run_started": True,
            "run_stopped": True,
            "method_error": True,
            "notify_lines": True,
        }
    ],
}
"""The demo user hears of high alarms, runs and `Notify:` lines by e-mail (to the mailbox file)."""


def choose_notifications(base: str, token: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/me/notifications",
        data=json.dumps(DEMO_NOTIFICATIONS).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def online_units(base: str, token: str) -> list[str]:
    request = urllib.request.Request(
        f"{base}/api/units", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return [str(unit["name"]) for unit in json.load(response) if unit.get("online")]
    except (urllib.error.URLError, OSError, ValueError):
        return []


def read_serial_device(process: subprocess.Popen[bytes], log: Path, processes: Processes) -> str:
    """The serial simulators print `serial device: /dev/pts/N`; the engine needs that path."""
    found: list[str] = []

    def seen() -> bool:
        match = (
            re.search(r"serial device: (\S+)", log.read_text(errors="replace"))
            if log.exists()
            else None
        )
        if match:
            found.append(match.group(1))
        return bool(match)

    wait_for(f"the serial simulator (pid {process.pid})", seen, 15, processes)
    return found[0]


def start_demo(args: argparse.Namespace, processes: Processes) -> None:
    data_dir: Path = args.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = f"http://{args.host}:{args.port}"
    for port, what in (
        (args.port, "the aggregator"),
        (args.modbus_port, "the Modbus simulator"),
        (args.opcua_port, "the OPC UA simulator"),
    ):
        if not port_is_free(args.host, port):
            raise DemoError(
                f"port {port} on {args.host} is in use (needed by {what}); stop whatever uses it or pick another port with --port / --modbus-port / --opcua-port"
            )

    step(1, f"database and demo user in {data_dir}")
    ensure_demo_user(data_dir)

    step(2, "engine tokens, one per unit")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tokens = {
        unit: new_engine_token(data_dir, f"demo-{unit}-{stamp}")
        for unit in ("chromatography", "dosing", "chromatography-opcua")
    }

    step(3, f"aggregator on {base}")
    mailbox = (data_dir / "mail" / "demo.mbox").resolve()
    processes.start(
        "aggregator",
        [
            tool("setpoint-aggregator"),
            "serve",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--data-dir",
            str(data_dir),
            "--smtp-url",
            f"file://{mailbox}",
            "--smtp-from",
            "setpoint-demo@localhost",
        ],
        logs / "aggregator.log",
    )
    wait_for("the aggregator to answer", lambda: login(base) is not None, 30, processes)

    step(4, "device simulators: Modbus and OPC UA chromatography skids, serial balance and pump")
    processes.start(
        "Modbus simulator",
        [
            tool("setpoint-sim"),
            "modbus",
            "--model",
            "chromatography",
            "--host",
            args.host,
            "--port",
            str(args.modbus_port),
        ],
        logs / "sim-modbus.log",
    )
    processes.start(
        "OPC UA simulator",
        [
            tool("setpoint-sim"),
            "opcua",
            "--model",
            "chromatography",
            "--host",
            args.host,
            "--port",
            str(args.opcua_port),
        ],
        logs / "sim-opcua.log",
    )
    sim_state = data_dir / "sim-state"
    devices = {}
    for profile in ("balance", "pump"):
        log = logs / f"sim-{profile}.log"
        log.unlink(missing_ok=True)
        process = processes.start(
            f"{profile} simulator",
            [tool("setpoint-sim"), "serial", "--profile", profile, "--state-dir", str(sim_state)],
            log,
        )
        devices[profile] = read_serial_device(process, log, processes)
    wait_for(
        "the Modbus simulator", lambda: not port_is_free(args.host, args.modbus_port), 15, processes
    )
    wait_for(
        "the OPC UA simulator", lambda: not port_is_free(args.host, args.opcua_port), 30, processes
    )

    step(5, "engines: chromatography (Modbus), dosing (serial), chromatography (OPC UA)")
    aggregator_ws = f"ws://{args.host}:{args.port}"
    units = {
        "chromatography": (
            "chromatography_modbus",
            {"SETPOINT_MODBUS_HOST": args.host, "SETPOINT_MODBUS_PORT": str(args.modbus_port)},
        ),
        "dosing": (
            "dosing",
            {"SETPOINT_BALANCE_PORT": devices["balance"], "SETPOINT_PUMP_PORT": devices["pump"]},
        ),
        "chromatography-opcua": (
            "chromatography_opcua",
            {
                "SETPOINT_OPCUA_URL": f"opc.tcp://{args.host}:{args.opcua_port}"
                "/setpoint-sim/chromatography"
            },
        ),
    }
    for unit, (example, env) in units.items():
        processes.start(
            f"{unit} engine",
            [
                tool("setpoint-engine"),
                "run",
                "--uod",
                str(EXAMPLES / f"{example}.py"),
                "--method",
                str(EXAMPLES / f"{example}.pcode"),
                "--aggregator",
                aggregator_ws,
                "--data-dir",
                str(data_dir / "engines" / unit),
            ],
            logs / f"engine-{unit}.log",
            env={**env, "SETPOINT_ENGINE_TOKEN": tokens[unit]},
        )

    step(6, "waiting for every unit to come online")
    token = login(base) or ""
    seen: set[str] = set()

    def all_online() -> bool:
        online = set(online_units(base, token))
        for name in sorted(online - seen):
            print(f"    unit online: {name}", flush=True)
        seen.update(online)
        return len(online) >= len(units)

    wait_for("every unit to come online", all_online, 60, processes)
    choose_notifications(base, token)
    print(
        f"\nSetpoint demo is running.\n"
        f"  Web UI:  {base}\n"
        f"  Login:   {DEMO_USER} / {DEMO_PASSWORD}\n"
        f"  Data:    {data_dir} (logs in {logs})\n"
        f"  Mail:    {DEMO_USER}'s notifications arrive in {mailbox} (an mbox file)\n"
        f"Press Ctrl-C to stop everything.",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m uod_examples.demo",
        description="The whole of Setpoint on one machine (what `make demo` runs): an aggregator "
        "on SQLite, the Modbus, OPC UA and serial device simulators, and three engines "
        "(chromatography over Modbus, dosing over serial lines, chromatography over OPC UA). "
        f"Prints the web UI's URL and the login ({DEMO_USER} / {DEMO_PASSWORD}) once every "
        "unit is online; Ctrl-C stops everything "
        "it started. Runs again on the same data directory keep earlier runs.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("demo-data"),
        metavar="DIR",
        help="where the database, logs (DIR/logs) and engine outboxes live (default: ./demo-data)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address every server binds to and the engines connect to (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=9800,
        help="aggregator port: the web UI is at http://HOST:PORT (default: 9800)",
    )
    parser.add_argument(
        "--modbus-port",
        type=int,
        default=5020,
        metavar="PORT",
        help="port of the Modbus chromatography simulator (default: 5020)",
    )
    parser.add_argument(
        "--opcua-port",
        type=int,
        default=4841,
        metavar="PORT",
        help="port of the OPC UA chromatography simulator (default: 4841)",
    )
    args = parser.parse_args(argv)

    processes = Processes()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell or CI runner may start us with SIGINT ignored, and Ctrl-C must
    # still stop everything.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start_demo(args, processes)
        while True:
            processes.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping the demo (engines first, so they can flush) ...", flush=True)
        return 0
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        processes.stop_all()
        print("Demo stopped; nothing left running.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
