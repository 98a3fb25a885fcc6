"""`setpoint-engine`: run, simulate and check a unit.

Common mistakes (a missing file, a broken UOD, a method with errors) end with one clear line on
stderr and exit code 2, never a traceback: the person at the lab PC is a scientist, not a
Python developer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.uod.definition import Uod

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
DEFAULT_SIMULATION_LIMIT = 86400.0  # simulated seconds: a method never ends on its own


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
        "--aggregator the engine runs standalone and prints its run log and state changes.",
    )
    run.add_argument("--uod", required=True, metavar="FILE", help="the UOD file (Python)")
    run.add_argument("--method", metavar="FILE", help="P-code method to load")
    run.add_argument("--start", action="store_true", help="start the method at once")
    run.add_argument(
        "--aggregator",
        metavar="ws://HOST:PORT",
        help="aggregator to report to (default: standalone, no aggregator)",
    )
    run.add_argument(
        "--token",
        metavar="TOKEN",
        help="engine token for the aggregator (default: $SETPOINT_ENGINE_TOKEN)",
    )
    run.add_argument(
        "--data-dir",
        metavar="DIR",
        default="setpoint-data",
        help="directory for the durable outbox (default: ./setpoint-data)",
    )

    sim = sub.add_parser(
        "simulate",
        help="run a method on a simulated clock",
        description="Run the method from Start on a simulated clock and print its run log, "
        "marks and state changes. Ends when the run reaches Stopped, when an error pauses it "
        "(exit code 1), or after --for.",
    )
    sim.add_argument("--uod", required=True, metavar="FILE", help="the UOD file (Python)")
    sim.add_argument("--method", required=True, metavar="FILE", help="P-code method to run")
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
        help='one JSON object per line: {"run_time", "kind", "text", "state"}',
    )

    check = sub.add_parser(
        "check",
        help="validate a UOD and analyze a method",
        description="Validate the UOD and print the analyzer's findings for the method, one per "
        "line as FILE:LINE:COL: severity: message. Exit code 1 when there are errors.",
    )
    check.add_argument("--uod", required=True, metavar="FILE", help="the UOD file (Python)")
    check.add_argument("--method", metavar="FILE", help="P-code method to analyze")
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
            return asyncio.run(_run(args))
    except CliError as exc:
        print(f"setpoint-engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


# ---- shared ---------------------------------------------------------------------------------


def _load(path: str) -> tuple[Uod, str]:
    from engine.uod import UodError, load_uod, uod_hash

    try:
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

    uod, _ = _load(args.uod)
    if args.method is None:
        out.write(f"{args.uod}: OK ({len(uod.tags)} tags, {len(uod.commands)} commands)\n")
        return EXIT_OK
    text = _read_method(args.method)
    findings = analyze(text, UodContext(uod))
    for line in _findings_lines(args.method, text, findings):
        out.write(line + "\n")
    return EXIT_FINDINGS if any(f.severity == "error" for f in findings) else EXIT_OK


# ---- simulate -------------------------------------------------------------------------------


async def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    from engine.clock import FakeClock
    from engine.ports import EngineCommandError
    from engine.runner import HumanEvents, JsonEvents, run_simulated
    from protocol.models import ControlAction

    uod, digest = _load(args.uod)
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


async def _run(args: argparse.Namespace) -> int:
    from engine.clock import RealClock
    from engine.ports import EngineCommandError, MessageSink
    from engine.runner import ConsoleSink, run_realtime
    from protocol.models import ControlAction

    uod, digest = _load(args.uod)
    text = _read_method(args.method)
    clock = RealClock()
    link: Any = None
    token: str = args.token or os.environ.get("SETPOINT_ENGINE_TOKEN") or ""
    if args.aggregator:
        if not token:
            raise CliError("--aggregator needs --token or SETPOINT_ENGINE_TOKEN")
        try:
            from engine.link.client import EngineLink
        except ImportError:
            raise CliError(
                "this engine has no aggregator link yet (engine/link/client.py)"
            ) from None
        if not args.aggregator.startswith(("ws://", "wss://")):
            raise CliError(f"--aggregator must look like ws://HOST:PORT, not {args.aggregator!r}")
    engine = _new_engine(uod, digest, text, clock)
    if args.aggregator:
        data_dir = Path(args.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"--data-dir {data_dir}: {exc}") from None
        link = EngineLink(url=args.aggregator, token=token, data_dir=data_dir, control=engine)
        sink: MessageSink = link
    else:
        sink = ConsoleSink()
    engine.sink = sink
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
    except Exception as exc:
        raise CliError(f"cannot start the hardware: {exc}") from None
    if link is not None:
        await link.start()
    print(
        f"setpoint-engine: {uod.name} running"
        + (f", reporting to {args.aggregator}" if link is not None else " standalone")
        + " (Ctrl+C stops)",
        file=sys.stderr,
        flush=True,
    )
    code = EXIT_OK
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which would otherwise show up as late scans.
    gc.collect()
    gc.freeze()
    try:
        engine.scan(clock.monotonic())
        if args.start:
            try:
                engine.control(ControlAction.START, _user())
            except EngineCommandError as exc:
                print(f"setpoint-engine: error: cannot start: {exc.message}", file=sys.stderr)
                code = EXIT_USAGE
                stop.set()
        if not stop.is_set():
            await run_realtime(
                engine,
                clock,
                stop,
                on_scan_error=lambda exc: print(f"scan error: {exc!r}", file=sys.stderr),
            )
    finally:
        # Stop a running method cleanly: outputs to safe values, RunStopped reported.
        with contextlib.suppress(EngineCommandError):
            engine.control(ControlAction.STOP, _user())
        engine.scan(clock.monotonic())
        if link is not None:
            await link.stop(flush_timeout=10.0)
        await engine.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
