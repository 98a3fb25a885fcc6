"""`setpoint-engine`: run, simulate and check a unit.

Common mistakes (a missing file, a broken UOD, a method with errors) end with one clear line on
stderr and exit code 2, never a traceback: the person at the lab PC is a scientist, not a
Python developer.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import ipaddress
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.hw.base import Hardware
    from engine.hw.modbus import ModbusHardware
    from engine.uod.definition import Uod

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
DEFAULT_SIMULATION_LIMIT = 86400.0  # simulated seconds: a method never ends on its own
DEFAULT_SAFE_TIMEOUT = 5.0  # as engine.shutdown's, without importing it for --help
DEFAULT_LOAD_TIMEOUT = 8.0  # with start-up, a UOD that hangs is reported within 10 s
FLUSH_TIMEOUT = 10.0


class CliError(Exception):
    """One line for the user; exit code 2."""


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'max', not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _add_load_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load-timeout",
        type=_seconds,
        default=DEFAULT_LOAD_TIMEOUT,
        metavar="SECONDS",
        help="give up on a UOD file that is still loading after this long (an endless loop, "
        f"or a call that waits); it is loaded in a separate process first (default: "
        f"{DEFAULT_LOAD_TIMEOUT:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="setpoint-engine",
        description="Setpoint engine: runs one unit's UOD and P-code methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the unit in real time",
        description="Scan the unit's hardware in real time and run its method. Without "
        "--aggregator the engine runs standalone and prints its run log and state changes on "
        "standard output. With --aggregator it reports everything to the aggregator (which "
        "also controls it) and keeps running, storing its data, while the aggregator is "
        "unreachable. However it ends (Ctrl+C, SIGTERM, SIGHUP from a closed terminal or SSH "
        "session, SIGQUIT, Ctrl+Break or a closed console window "
        "on Windows, an internal error), the engine stops the run, writes every output's safe "
        "value and waits up to --safe-timeout for the hardware to confirm them (read back "
        "where the driver can), records the result in its error log, gives the aggregator up "
        "to 10 s to take the outbox, and only then exits. Ctrl+C again during that shutdown "
        "skips the wait for the aggregator, never the safe values. Exit code 3: an output "
        "could not be made safe (check the unit); 4: the engine failed but its outputs are "
        "safe. Nothing covers SIGKILL or a power loss: use the device's own watchdog. Example "
        "UODs read their device addresses from environment variables (see the UOD file's "
        "docstring).",
    )
    run.add_argument(
        "--uod", required=True, metavar="FILE", help="the unit's UOD file (Python); required"
    )
    run.add_argument(
        "--method",
        metavar="FILE",
        help="P-code method to load (default: none; the aggregator's UI can send one)",
    )
    run.add_argument(
        "--start",
        action="store_true",
        help="start the loaded method at once (default: wait for a Start command)",
    )
    run.add_argument(
        "--aggregator",
        action="append",
        metavar="ws://HOST:PORT",
        help="aggregator to report to, e.g. ws://127.0.0.1:9800 (default: standalone, no "
        "aggregator). Several aggregators of one site (repeat the option or give a comma list): "
        "the engine fails over to the next in order when its link is lost",
    )
    run.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the engine token for --aggregator, made with `setpoint-aggregator "
        "engine-token create NAME` (default: $SETPOINT_ENGINE_TOKEN)",
    )
    run.add_argument(
        "--token",
        metavar="TOKEN",
        help="the engine token itself; avoid it, a command line is visible to other users of "
        "the PC: use $SETPOINT_ENGINE_TOKEN or --token-file",
    )
    run.add_argument(
        "--safe-timeout",
        type=_seconds,
        default=DEFAULT_SAFE_TIMEOUT,
        metavar="SECONDS",
        help="at shutdown, how long to wait for the hardware to confirm the safe values "
        f"(default: {DEFAULT_SAFE_TIMEOUT:g})",
    )
    run.add_argument(
        "--data-dir",
        metavar="DIR",
        default="setpoint-data",
        help="directory for the durable outbox that holds data until the aggregator has it "
        "(default: ./setpoint-data)",
    )
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="detail of the engine's own messages on standard error; debug also shows every "
        "retry and the Modbus library's messages (default: info)",
    )

    sim = sub.add_parser(
        "simulate",
        help="run a method on a simulated clock",
        description="Run the method from Start on a simulated clock and print its run log, "
        "marks and state changes. Ends when the run reaches Stopped, when an error pauses it "
        "(exit code 1), or after --for.",
    )
    sim.add_argument(
        "--uod",
        required=True,
        metavar="FILE",
        help="the unit's UOD file (Python); required. The method runs on the unit's process "
        "model (uod.simulation(...), or its simulated() hardware), never on its devices",
    )
    sim.add_argument(
        "--method", required=True, metavar="FILE", help="P-code method to run; required"
    )
    sim.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="N|max",
        help="simulated seconds per real second, or 'max' for as fast as possible (default: max)",
    )
    sim.add_argument(
        "--for",
        dest="duration",
        type=_seconds,
        metavar="SECONDS",
        help="stop after this many simulated seconds even if the run has not stopped "
        "(default: 24 h)",
    )
    sim.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object per line instead of text: {"run_time", "kind" (mark, '
        'command, state or error), "text", "state"} (default: text)',
    )

    check = sub.add_parser(
        "check",
        help="validate a UOD and analyze a method",
        description="Validate the UOD and print the analyzer's findings for the method, one per "
        "line as FILE:LINE:COL: severity: message. Exit code 1 when there are errors.",
    )
    check.add_argument(
        "--uod", required=True, metavar="FILE", help="the unit's UOD file (Python); required"
    )
    check.add_argument(
        "--method",
        metavar="FILE",
        help="P-code method to analyze against the UOD (default: check the UOD only)",
    )
    for command in (run, sim, check):
        _add_load_timeout(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args, sys.stdout)
        if args.command == "simulate":
            try:
                return asyncio.run(_simulate(args, sys.stdout))
            except BrokenPipeError:  # `simulate ... | head`: the reader has all it wants
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return EXIT_OK
        if args.command == "run":
            # No collector passes while start-up builds its long-lived objects (imports, UOD,
            # method): ~0.05 s of the start's CPU; `run` freezes them and turns it back on.
            gc.disable()
            try:
                from engine.cli_run import run

                return asyncio.run(run(args))
            finally:
                gc.enable()  # also when `run` ended before it froze start-up (a CliError)
    except CliError as exc:
        print(f"setpoint-engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


# ---- shared ---------------------------------------------------------------------------------


def _load(
    path: str,
    timeout: float = DEFAULT_LOAD_TIMEOUT,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[Uod, str]:
    """Loaded here only once a separate process loaded it within `timeout` (engine/uod_probe.py):
    a file that ends or hangs the process is reported in one line, this one lives on.
    `meanwhile` (imports) runs while the separate process loads it."""
    from engine.uod_probe import UodProbe

    with UodProbe(path, timeout) as probe:  # loads while this process imports the rest
        from engine.uod import UodError, load_uod, uod_hash

        try:
            probe.wait(meanwhile)
            uod = load_uod(path)
        except UodError as exc:
            raise CliError(str(exc)) from None
    return uod, uod_hash(path)


def _read_method(path: str | None) -> str:
    if path is None:
        return ""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"{path}: method file not found")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read: {exc}") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


def _findings_lines(path: str, text: str, findings: Sequence[Any]) -> list[str]:
    lines = []
    for f in findings:
        hint = f" (did you mean {f.suggestion}?)" if f.suggestion else ""
        lines.append(f"{path}:{f.line}:{f.col_start}: {f.severity}: {f.message}{hint}")
    return lines


def _new_engine(uod: Uod, digest: str, method: str, clock: Any, **kwargs: Any) -> Engine:
    from engine.engine import Engine
    from engine.ports import EngineCommandError

    try:
        return Engine(
            uod, clock=clock, method=method, uod_hash=digest, ureg=uod.unit_registry, **kwargs
        )
    except EngineCommandError as exc:
        raise CliError(f"method refused: {exc.message}") from None
    except Exception as exc:  # the UOD's hardware factory is UOD code
        raise CliError(f"{uod.filename}: cannot create the hardware: {exc}") from None


# ---- check ----------------------------------------------------------------------------------


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from engine.context import UodContext
    from engine.lang.analyzer import analyze

    uod, _ = _load(args.uod, args.load_timeout)
    if args.method is None:
        out.write(f"{args.uod}: OK ({len(uod.tags)} tags, {len(uod.commands)} commands)\n")
        return EXIT_OK
    text = _read_method(args.method)
    findings = analyze(text, UodContext(uod))
    for line in _findings_lines(args.method, text, findings):
        out.write(line + "\n")
    if not findings:  # silence would leave a newcomer wondering whether anything was checked
        out.write(f"{args.method}: OK (no findings)\n")
    return EXIT_FINDINGS if any(f.severity == "error" for f in findings) else EXIT_OK


# ---- simulate -------------------------------------------------------------------------------


async def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    from engine.clock import FakeClock
    from engine.model_run import NoProcessModel, for_simulation
    from engine.ports import EngineCommandError
    from engine.runner import HumanEvents, JsonEvents, run_simulated
    from protocol.models import ControlAction

    uod, digest = _load(args.uod, args.load_timeout)
    try:
        uod = for_simulation(uod)
    except NoProcessModel as exc:
        raise CliError(f"{args.uod}: {exc}") from None
    text = _read_method(args.method)
    clock = FakeClock()
    observer = JsonEvents(out) if args.json else HumanEvents(out)
    engine = _new_engine(uod, digest, text, clock, observers=[observer])
    try:
        await engine.start()
    except Exception as exc:
        raise CliError(f"cannot start the hardware: {exc}") from None
    try:
        engine.scan(clock.monotonic())
        try:
            engine.control(ControlAction.START, _user())
        except EngineCommandError as exc:
            raise CliError(f"{args.method}: {exc.message}") from None
        duration = args.duration if args.duration is not None else DEFAULT_SIMULATION_LIMIT
        end = await run_simulated(engine, clock, speed=args.speed, duration=duration)
    finally:
        await engine.stop()
    if end.reason == "error":
        print(
            f"setpoint-engine: simulation paused by an error at run time {end.seconds:.1f} s: "
            f"{_last_error(engine)}",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    if end.reason == "complete":
        print(
            f"setpoint-engine: the method completed at run time {end.seconds:.1f} s with "
            "nothing left armed or running; the unit stays Running until a Stop",
            file=sys.stderr,
        )
    if end.reason == "duration" and args.duration is None:
        print(
            f"setpoint-engine: the run had not stopped after {DEFAULT_SIMULATION_LIMIT:g} "
            "simulated seconds; use --for to simulate longer",
            file=sys.stderr,
        )
    return EXIT_OK


def _last_error(engine: Engine) -> str:
    errors = [e for e in engine.error_log if e.level == "error"]
    return errors[-1].message if errors else "unknown error"


# ---- run ------------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    """The engine's own messages as `setpoint-engine: ...` lines on stderr.

    pymodbus logs every failed connect ("Failed to connect ... Repeating....") at warning; the
    engine reports a device it cannot reach itself, once, so the library speaks only at debug.
    """
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="setpoint-engine: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pymodbus").setLevel(
        logging.DEBUG if level == "debug" else logging.CRITICAL + 1
    )


class HardwareAdvice:
    """One stderr line per hardware part that cannot connect, saying what to do.

    The engine's error log records every transition (stdout when standalone, the aggregator
    otherwise); the person at the terminal needs the cause and the remedy once per outage, not
    a line per retry, and with an aggregator would otherwise see nothing at all.
    """

    def __init__(self, hardware: Hardware, out: TextIO) -> None:
        from engine.hw.composite import CompositeHardware

        self._parts: list[Hardware] = (
            list(hardware.parts) if isinstance(hardware, CompositeHardware) else [hardware]
        )
        self._out = out
        self._advised: set[int] = set()

    def check(self) -> None:
        from engine.hw.base import ConnectionState

        for index, part in enumerate(self._parts):
            ok = part.connection_state is ConnectionState.OK
            if not ok and index not in self._advised:
                self._advised.add(index)
                self._say(f"{hardware_advice(part)}; the engine keeps retrying")
            elif ok and index in self._advised:
                self._advised.discard(index)
                self._say(f"{getattr(part, 'name', 'hardware')}: connected")

    def every(self, period: float = 0.5) -> Callable[[float], None]:
        """A check at most every `period` seconds, for the scan loop's `after_scan`: the checks
        ride on the scan's wake-ups rather than on a timer of their own (two wake-ups a second
        fewer; the engine's running cost is mostly such wake-ups, issue 15 item 3). A failing
        check (stderr gone) ends the advice, never the scan loop."""
        due = -math.inf

        def after_scan(now: float) -> None:
            nonlocal due
            if now < due:
                return
            due = now + period
            try:
                self.check()
            except Exception:
                due = math.inf
                logging.getLogger("engine").exception("hardware advice failed; no more advice")

        return after_scan

    def _say(self, line: str) -> None:
        print(f"setpoint-engine: {line}", file=self._out, flush=True)


def hardware_advice(part: Hardware) -> str:
    """What failed and what to do, from the part's own settings (typed, not parsed from text)."""
    from engine.hw.modbus import ModbusHardware, ModbusTcp
    from engine.hw.serial_line import SerialHardware

    name = str(getattr(part, "name", "hardware"))
    if isinstance(part, ModbusHardware) and isinstance(part.connection, ModbusTcp):
        c = part.connection
        device = "the Modbus device" if name == c.describe() else f"the Modbus device {name!r}"
        text = (
            f"cannot connect to {device} at {c.host}:{c.port}{_from_env(c.host, c.port)}"
            "; check that it is on and reachable from this PC"
        )
        if _is_loopback(c.host) and _simulator_map(part):
            from engine.simdev.modbus_sim import MODELS

            models = "|".join(sorted(MODELS))
            text += (
                f", or start the simulator: setpoint-sim modbus --model {models} --port {c.port}"
            )
        return text
    if isinstance(part, ModbusHardware):
        return _serial_advice(name, str(part.connection.port), "Modbus RTU device")
    if isinstance(part, SerialHardware):
        return _serial_advice(name, part.port.url, "serial instrument")
    return f"{name}: cannot connect"


def _simulator_map(part: ModbusHardware) -> bool:
    """Only a UOD made for the device simulator (sharing its register map) is told to start it;
    anyone else's device is their own."""
    from engine.simdev.chromatography_map import CHROMATOGRAPHY_REGISTERS

    return not set(part.registers.values()).isdisjoint(CHROMATOGRAPHY_REGISTERS)


def _serial_advice(name: str, url: str, what: str) -> str:
    from engine.simdev.profiles import PROFILES

    where = f"serial port {url}{_from_env(url)}"
    if url.startswith("/") and not os.path.exists(url):
        profile = name.split()[0] if name.split() and name.split()[0] in PROFILES else None
        sim = f"--profile {profile}" if profile else "--profile " + "|".join(sorted(PROFILES))
        return (
            f"{name}: {where} does not exist; check the port name (Linux: /dev/ttyUSB0, "
            f"Windows: COM3) or start a simulated instrument with `setpoint-sim serial {sim}` "
            "and use the port it prints"
        )
    if url.startswith("/") and not os.access(url, os.R_OK | os.W_OK):
        return (
            f"{name}: no permission to open {where}; add this user to the group that owns it "
            "(often `dialout`) and log in again"
        )
    return (
        f"{name}: no answer from the {what} on {where}; check that it is on, the cable and the "
        "line settings (baud rate, parity)"
    )


def _from_env(*values: object) -> str:
    """Example UODs read addresses from SETPOINT_* variables; name the one that set this."""
    wanted = {str(v) for v in values}
    names = sorted(k for k, v in os.environ.items() if k.startswith("SETPOINT_") and v in wanted)
    return f" (from {', '.join(names)})" if names else ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
