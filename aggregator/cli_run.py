"""`setpoint-aggregator run export`: a stored run as CSV or .xlsx, straight from the database
(no server needed; the same files as `GET /api/runs/{id}/csv` and `/xlsx`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.cli import UsageError, _add_storage_options, database_url, open_database
from aggregator.run_export import ExportTooLarge, RunExport, write_csv, write_xlsx

if TYPE_CHECKING:
    from aggregator.store import Storage


def add_run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="stored runs")
    run_sub = run.add_subparsers(dest="run_command", required=True, metavar="ACTION")
    export = run_sub.add_parser(
        "export",
        help="write a run's data to a CSV or Excel file",
        description="Write a stored run's data to a file, from the database (the aggregator "
        "need not run): CSV (# metadata lines, then UTC timestamp, Run Time and one column per "
        "tag) or an Excel workbook (sheet Data with typed cells, sheet Run with the metadata). "
        "See docs/data.md.",
    )
    export.add_argument("run_id", metavar="ID", help="the run id (as in the run list)")
    export.add_argument(
        "--format", choices=("csv", "xlsx"), default="csv", help="file format (default: csv)"
    )
    export.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="file to write, replaced if it exists (default: run-ID.csv or run-ID.xlsx in the "
        "current directory; - for standard output)",
    )
    _add_storage_options(export)


def cmd_run(args: argparse.Namespace) -> int:
    from aggregator.store import Storage

    target = _target(args)
    engine = open_database(database_url(args))
    try:
        storage = Storage(engine)
        run = storage.run_by_id(args.run_id)
        if run is None:
            raise UsageError(f"no run with id {args.run_id!r}")
        export = RunExport.load(storage, run)
        if target is None:
            target = Path(export.filename(args.format))
        rows = _write(storage, export, args.format, target)
    finally:
        engine.dispose()
    if target != "-":
        print(f"run {args.run_id}: {rows} rows written to {target}", file=sys.stderr)
    return 0


def _target(args: argparse.Namespace) -> Path | str | None:
    """Checked before the database is opened, so a typo costs nothing."""
    if args.output is None:
        return None
    if args.output == "-":
        return "-"
    path = Path(args.output)
    if path.is_dir():
        raise UsageError(f"--output {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: directory {path.parent} does not exist")
    return path


def _write(storage: Storage, export: RunExport, fmt: str, target: Path | str) -> int:
    """To standard output, or to a temporary file beside the target that replaces it only when
    complete (an interrupted export never leaves half a file under the name asked for)."""
    if target == "-":
        if fmt == "xlsx":
            buffer = io.BytesIO()
            rows = _guarded(write_xlsx, storage, export, buffer)
            sys.stdout.buffer.write(buffer.getvalue())
            return rows
        return _guarded(write_csv, storage, export, sys.stdout)
    path = Path(target)
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise UsageError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    try:
        if fmt == "xlsx":
            with os.fdopen(handle, "wb") as out_bytes:
                rows = _guarded(write_xlsx, storage, export, out_bytes)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out_text:
                rows = _guarded(write_csv, storage, export, out_text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return rows


def _guarded(write: Any, storage: Storage, export: RunExport, out: Any) -> int:
    try:
        return int(write(storage, export, out))
    except ExportTooLarge as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write the export: {exc.strerror or exc}") from None
