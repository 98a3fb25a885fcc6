"""`setpoint-engine run`: the unit in real time, standalone or reporting to an aggregator.

Where the engine token comes from (--token, --token-file, $SETPOINT_ENGINE_TOKEN), the link, the
scan loop, and the wiring of every way out (signals, a scan or link exception, the loop ending)
to the safe shutdown of engine/shutdown.py. The rest of the command line lives in engine/cli.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli import (
    EXIT_OK,
    EXIT_USAGE,
    FLUSH_TIMEOUT,
    CliError,
    HardwareAdvice,
    _load,
    _new_engine,
    _read_method,
    _setup_logging,
    _user,
)

if TYPE_CHECKING:
    from engine.engine import Engine


def _token(args: argparse.Namespace) -> str:
    """--token, else --token-file, else $SETPOINT_ENGINE_TOKEN ("" when none is given)."""
    if args.token and args.token_file:
        raise CliError("give the engine token with --token or --token-file, not both")
    if args.token:
        return str(args.token)
    if args.token_file:
        path = Path(args.token_file)
        if path.is_dir():
            raise CliError(f"--token-file {path}: is a directory, not the token file")
        if not path.is_file():
            raise CliError(f"--token-file {path}: file not found")
        try:
            token = path.read_text(encoding="utf-8-sig").strip()  # Notepad may add a BOM
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--token-file {path}: cannot read: {exc}") from None
        if not token:
            raise CliError(
                f"--token-file {path}: the file is empty; put the engine token from "
                "`setpoint-aggregator engine-token create NAME` in it"
            )
        if len(token.split()) != 1:
            raise CliError(f"--token-file {path}: the file must hold the token alone")
        return token
    return os.environ.get("SETPOINT_ENGINE_TOKEN", "").strip()


def _new_link(args: argparse.Namespace, token: str, engine: Engine) -> Any:
    """The aggregator link for --aggregator, or None when the engine runs standalone."""
    if not args.aggregator:
        return None
    if not token:
        raise CliError(
            "--aggregator needs an engine token in SETPOINT_ENGINE_TOKEN or a --token-file; "
            "create one on the aggregator with `setpoint-aggregator engine-token create NAME`"
        )
    urls = aggregator_urls(args.aggregator)
    from engine.link.client import EngineLink

    data_dir = Path(args.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data-dir {data_dir}: {exc}") from None
    return EngineLink(url=urls, token=token, data_dir=data_dir, control=engine)


def aggregator_urls(values: list[str]) -> list[str]:
    """The --aggregator URLs in failover order: repeated options and comma lists alike."""
    urls = [url.strip() for value in values for url in value.split(",")]
    for url in urls:
        if not url.startswith(("ws://", "wss://")) or url in ("ws://", "wss://"):
            raise CliError(f"--aggregator must look like ws://HOST:PORT, not {url!r}")
    for url in urls:
        if urls.count(url) > 1:
            raise CliError(f"--aggregator {url} is given twice; name each aggregator once")
    return urls


async def run(args: argparse.Namespace) -> int:
    """`run`: every way out of the loop goes through the safe shutdown (engine/shutdown.py)."""
    from engine.clock import RealClock
    from engine.runner import ConsoleSink
    from engine.shutdown import ShutdownControl, install_interrupts, shut_down

    _setup_logging(args.log_level)
    uod, digest = _load(args.uod, args.load_timeout, lambda: _import_the_rest(args))
    text = _read_method(args.method)
    token = _token(args)
    clock = RealClock()
    engine = _new_engine(uod, digest, text, clock)
    link = _new_link(args, token, engine)
    engine.sink = link if link is not None else ConsoleSink()
    control = ShutdownControl()
    session = _RunSession(control, args.safe_timeout)
    loop = asyncio.get_running_loop()
    finished = threading.Event()
    remove = install_interrupts(
        loop, session.request, finished, args.safe_timeout + FLUSH_TIMEOUT + 2.0
    )
    code = EXIT_OK
    try:
        code = await _serve(args, engine, clock, link, session)
    except CliError:
        control.begin("could not start")
        raise
    except Exception:
        logging.getLogger("engine").exception("the engine failed")
        session.request("the engine failed", failure=True)
    finally:
        report = await shut_down(
            engine,
            control,
            user=_user(),
            link=link,
            safe_timeout=args.safe_timeout,
            flush_timeout=FLUSH_TIMEOUT,
            end_flush=session.end_flush,
        )
        finished.set()
        remove()
    return report.code or code


def _import_the_rest(args: argparse.Namespace) -> None:
    """What `run` has not imported yet when the UOD is loaded, imported while the probe child
    loads it (the scan, runner and shutdown are imported at the top of `run`; the link, ~20 ms
    of websockets, sqlite3 and its state machine, was imported only after the probe answered).
    Imports only: no thread may start before the UOD is loaded (issue 15 item 3)."""
    if args.aggregator:
        import engine.link.client  # noqa: F401


class _RunSession:
    """Turns shutdown requests (signals, errors) into what the running `run` does about them."""

    def __init__(self, control: Any, safe_timeout: float) -> None:
        self.control = control
        self.safe_timeout = safe_timeout
        self.stop = asyncio.Event()
        self.end_flush = asyncio.Event()

    def request(self, reason: str, failure: bool = False) -> None:
        from engine.shutdown import Reaction

        reaction = self.control.request(reason, failure=failure)
        if reaction is Reaction.BEGIN:
            self.stop.set()
        elif reaction is Reaction.AFTER_SAFE:
            _say(
                f"{reason}: the safe values are written first (at most {self.safe_timeout:g} s); "
                "then the engine exits without waiting for the aggregator"
            )
        elif reaction is Reaction.END_FLUSH:
            self.end_flush.set()
            _say(f"{reason}: not waiting for the aggregator; the outbox keeps the rest")


def _say(line: str) -> None:
    print(f"setpoint-engine: {line}", file=sys.stderr, flush=True)


async def _serve(
    args: argparse.Namespace, engine: Engine, clock: Any, link: Any, session: _RunSession
) -> int:
    """Starts the hardware and the link and scans until a shutdown is requested."""
    from engine.describe import describe
    from engine.ports import EngineCommandError
    from engine.runner import run_realtime
    from protocol.models import ControlAction

    try:
        await engine.start()
    except Exception as exc:
        raise CliError(f"cannot start the hardware: {exc}") from None
    if link is not None:
        await link.start()
        link.on_failure(lambda exc: session.request(f"link error: {describe(exc)}", True))
    where = (
        f", reporting to {' or '.join(aggregator_urls(args.aggregator))}"
        if link is not None
        else " standalone"
    )
    _say(f"{engine.uod.name} running{where} (Ctrl+C stops; outputs go to their safe values)")
    advice = HardwareAdvice(engine.hardware, sys.stderr).every()
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which would otherwise show up as late scans. No gc.collect() first: start-up
    # leaves ~2,000 unreachable objects (tens of kB, frozen with the rest), and the pass cost
    # 0.025-0.035 s before the engine could go online.
    gc.freeze()
    gc.enable()
    now = clock.monotonic()
    engine.scan(now)
    advice(now)
    if args.start and not session.stop.is_set():  # a signal during start-up: no run
        try:
            engine.control(ControlAction.START, _user())
        except EngineCommandError as exc:
            _say(f"error: cannot start: {exc.message}")
            session.request("the method could not start")
            return EXIT_USAGE
    if not session.stop.is_set():
        await run_realtime(
            engine,
            clock,
            session.stop,
            on_scan_error=lambda exc: session.request(f"scan error: {describe(exc)}", failure=True),
            after_scan=advice,
        )
    return EXIT_OK
