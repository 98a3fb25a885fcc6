"""`setpoint-sim`: serve simulated instruments so the engine can be run against real protocols.

setpoint-sim modbus --model chromatography [--host 127.0.0.1] [--port 5020]
setpoint-sim serial --profile balance|pump [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.simdev.chromatography_map import DEFAULT_PORT
from engine.simdev.modbus_sim import MODELS, run_modbus_device
from engine.simdev.profiles import PROFILES
from engine.simdev.serial_server import PtyDevice, default_state_dir, make_instrument


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="setpoint-sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modbus = sub.add_parser("modbus", help="serve a process model as a Modbus TCP device")
    modbus.add_argument("--model", required=True, choices=sorted(MODELS))
    modbus.add_argument("--host", default="127.0.0.1")
    modbus.add_argument("--port", type=int, default=DEFAULT_PORT)
    modbus.add_argument("--interval", type=float, default=0.1, help="model step, seconds")
    serial = sub.add_parser("serial", help="answer like a serial instrument on a pseudo-terminal")
    serial.add_argument("--profile", required=True, choices=sorted(PROFILES))
    serial.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="folder where the pump publishes its flow for the balance (default: %(default)s)",
    )
    return parser


def _say(line: str) -> None:
    print(line, flush=True)


async def _modbus(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_modbus_device(args.model, args.host, args.port, args.interval, _say, stop)


def _serial(args: argparse.Namespace) -> None:
    device = PtyDevice(make_instrument(args.profile, args.state_dir))
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
    if args.command == "modbus":
        if not 1 <= args.port <= 65535:
            print(f"setpoint-sim: error: --port must be 1..65535, not {args.port}", file=sys.stderr)
            return 2
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_modbus(args))
        except OSError as exc:
            print(f"setpoint-sim: error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        _serial(args)
    except OSError as exc:
        print(f"setpoint-sim: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
