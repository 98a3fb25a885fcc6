"""`setpoint-sim`: serve simulated instruments so the engine can be run against real protocols.

setpoint-sim modbus --model chromatography [--host 127.0.0.1] [--port 5020] [--watchdog SECONDS]
setpoint-sim opcua --model chromatography [--host 127.0.0.1] [--port 4841]
setpoint-sim serial --profile balance|pump [--state-dir DIR] [--watchdog SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.simdev.chromatography_map import DEFAULT_PORT
from engine.simdev.modbus_sim import MODELS, run_modbus_device
from engine.simdev.opcua_map import DEFAULT_PORT as OPCUA_PORT
from engine.simdev.profiles import PROFILES
from engine.simdev.serial_server import PtyDevice, default_state_dir, make_instrument


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="setpoint-sim",
        description="Serve simulated instruments over the real protocols (Modbus TCP, OPC UA, "
        "serial) "
        "so an engine can be run and tested without hardware. Each runs until Ctrl+C or SIGTERM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modbus = sub.add_parser(
        "modbus",
        help="serve a process model as a Modbus TCP device",
        description="Serve a process model as a Modbus TCP device (register map: "
        "engine/simdev/README.md). Prints `modbus device: HOST:PORT (...)` once listening. "
        "uod_examples/chromatography_modbus.py connects to it (SETPOINT_MODBUS_HOST, "
        "SETPOINT_MODBUS_PORT).",
    )
    modbus.add_argument(
        "--model", required=True, choices=sorted(MODELS), help="process model to serve; required"
    )
    modbus.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    modbus.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port to listen on (default: {DEFAULT_PORT}; Modbus devices usually use 502)",
    )
    modbus.add_argument(
        "--interval",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="how often the model steps on the simulator's clock (default: 0.1)",
    )
    modbus.add_argument(
        "--watchdog",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="communication-loss timeout the device starts with (default: 0, off until an engine "
        "writes its timeout register): once the engine's heartbeat register has changed, a "
        "heartbeat silent this long puts the pump at 0 and closes the inlet valves",
    )
    opcua = sub.add_parser(
        "opcua",
        help="serve a process model as an OPC UA server",
        description="Serve a process model as an OPC UA server (nodes: engine/simdev/README.md; "
        "security None, anonymous). Prints `opcua device: opc.tcp://HOST:PORT/...` once "
        "listening. uod_examples/chromatography_opcua.py connects to it (SETPOINT_OPCUA_URL).",
    )
    opcua.add_argument(
        "--model", required=True, choices=sorted(MODELS), help="process model to serve; required"
    )
    opcua.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    opcua.add_argument(
        "--port",
        type=int,
        default=OPCUA_PORT,
        help=f"TCP port to listen on (default: {OPCUA_PORT}; OPC UA servers usually use 4840)",
    )
    opcua.add_argument(
        "--interval",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="how often the model steps on the simulator's clock (default: 0.1)",
    )
    serial = sub.add_parser(
        "serial",
        help="answer like a serial instrument on a pseudo-terminal",
        description="Answer like a serial instrument on a new pseudo-terminal and print "
        "`serial device: /dev/pts/N`; give that path to the engine (uod_examples/dosing.py reads "
        "SETPOINT_PUMP_PORT and SETPOINT_BALANCE_PORT). Linux and macOS only.",
    )
    serial.add_argument(
        "--profile",
        required=True,
        choices=sorted(PROFILES),
        help="instrument to imitate: a laboratory balance or a peristaltic pump; required",
    )
    serial.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        metavar="DIR",
        help="folder where the pump publishes its flow so the balance's weight follows it "
        "(default: %(default)s)",
    )
    serial.add_argument(
        "--watchdog",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="pump only: a running pump that hears no command for this long stops by itself "
        "(default: 0, off)",
    )
    return parser


def _port_in_use(host: str, port: int) -> bool:
    """Tell a busy port apart from pymodbus's one-size "cannot listen" so the advice fits."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _say(line: str) -> None:
    print(line, flush=True)


async def _modbus(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_modbus_device(
        args.model, args.host, args.port, args.interval, _say, stop, args.watchdog
    )


async def _opcua(args: argparse.Namespace) -> None:
    from engine.simdev.opcua_sim import run_opcua_device  # asyncua only for this command

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_opcua_device(args.model, args.host, args.port, args.interval, _say, stop)


def _listen_error(host: str, port: int, exc: OSError) -> int:
    if _port_in_use(host, port):
        print(
            f"setpoint-sim: error: cannot listen on {host}:{port}: the port is already in use "
            "(another setpoint-sim or `make demo`?); stop that or pick another with --port",
            file=sys.stderr,
        )
    else:
        print(f"setpoint-sim: error: {exc}", file=sys.stderr)
    return 1


def _serial(args: argparse.Namespace) -> None:
    handler, tick = make_instrument(args.profile, args.state_dir, args.watchdog, _say)
    device = PtyDevice(handler, tick=tick)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _say(f"serial device: {device.path}")
    try:
        device.serve(stop)
    finally:
        device.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "opcua":
        if not 1 <= args.port <= 65535:
            print(f"setpoint-sim: error: --port must be 1..65535, not {args.port}", file=sys.stderr)
            return 2
        if not args.interval > 0:
            print("setpoint-sim: error: --interval must be > 0 seconds", file=sys.stderr)
            return 2
        logging.getLogger("asyncua").setLevel(logging.CRITICAL + 1)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_opcua(args))
        except OSError as exc:
            return _listen_error(args.host, args.port, exc)
        return 0
    if args.command == "modbus":
        if not 1 <= args.port <= 65535:
            print(f"setpoint-sim: error: --port must be 1..65535, not {args.port}", file=sys.stderr)
            return 2
        if not 0 <= args.watchdog <= 65.535:
            print(
                f"setpoint-sim: error: --watchdog must be 0..65.535 s, not {args.watchdog:g}",
                file=sys.stderr,
            )
            return 2
        # pymodbus logs its own failures ("Failed to start server ..."); ours is one line.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL + 1)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_modbus(args))
        except OSError as exc:
            if _port_in_use(args.host, args.port):
                print(
                    f"setpoint-sim: error: cannot listen on {args.host}:{args.port}: the port is "
                    "already in use (another setpoint-sim or `make demo`?); stop that or pick "
                    "another with --port",
                    file=sys.stderr,
                )
            else:
                print(f"setpoint-sim: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.watchdog < 0 or (args.watchdog > 0 and args.profile != "pump"):
        print(
            "setpoint-sim: error: --watchdog takes seconds >= 0 and applies to --profile pump only",
            file=sys.stderr,
        )
        return 2
    try:
        _serial(args)
    except OSError as exc:
        print(f"setpoint-sim: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
