"""A stored run as a file for people: CSV (streamed) or an Excel workbook (.xlsx).

Shared by `GET /api/runs/{id}/csv` and `/xlsx` and by `setpoint-aggregator run export`, which
works on the database without a server, so both give the same columns and values. docs/data.md
describes the files.

openpyxl is imported only when a workbook is made: the aggregator starts without it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from protocol import ScalarValue

if TYPE_CHECKING:
    from aggregator.store import Storage
    from aggregator.store.rows import RunRow

EXCEL_MAX_ROWS = 1_048_576
"""Rows of one Excel sheet; the header takes one."""

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportTooLarge(Exception):
    """The run has more rows than an Excel sheet holds."""


@dataclass(frozen=True)
class RunExport:
    """What every format of a run's export is made of, read once."""

    run: RunRow
    tags: list[tuple[int, str, str | None]]
    versions: list[str]

    @classmethod
    def load(cls, storage: Storage, run: RunRow) -> RunExport:
        with storage.engine.connect() as conn:
            tags = storage.run_tags(conn, run.pk)
        return cls(run, tags, [str(m.version) for m in storage.run_methods(run.pk)])

    def metadata(self) -> list[tuple[str, str]]:
        run = self.run
        try:
            uod = json.loads(run.uod_json or "{}")
        except ValueError:
            uod = {}
        version = str(run.method_version)
        if self.versions:
            version += f" (versions as run: {', '.join(self.versions)})"
        return [
            ("unit", str(run.engine_id)),
            ("run id", str(run.run_id)),
            ("batch", str(run.batch_name or "")),
            ("start", iso(run.started)),
            ("stop", iso(run.stopped)),
            ("uod", str(run.uod_name or uod.get("name", ""))),
            ("method version", version),
        ]

    def header(self) -> list[str]:
        return ["UTC timestamp", "Run Time"] + [
            f"{name} [{unit}]" if unit else name for _, name, unit in self.tags
        ]

    def rows(self, storage: Storage) -> Generator[tuple[float, list[ScalarValue]], None, None]:
        return storage.iter_run_rows(self.run.pk, [tag_id for tag_id, _, _ in self.tags])

    def filename(self, extension: str) -> str:
        """Header- and file-system-safe: run ids come from engines."""
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", str(self.run.run_id))[:100]
        return f"run-{safe_id}.{extension}"


def iso(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- CSV ----------------------------------------------------------------------------------------


def _cell(value: ScalarValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def csv_preamble(export: RunExport) -> str:
    """The `#` metadata lines and the column header."""
    buffer = io.StringIO()
    buffer.write("".join(f"# {key}: {value}\n" for key, value in export.metadata()))
    csv.writer(buffer, lineterminator="\n").writerow(export.header())
    return buffer.getvalue()


def csv_blocks(
    export: RunExport, rows: Iterator[tuple[float, list[ScalarValue]]], block_rows: int
) -> Generator[str, None, None]:
    """The data lines, `block_rows` at a time (the caller fetches each block off the loop)."""
    started = export.run.started
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    count = 0
    for t, values in rows:
        writer.writerow([iso(t), f"{t - started:.3f}"] + [_cell(v) for v in values])
        count += 1
        if count == block_rows:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            count = 0
    if count:
        yield buffer.getvalue()


def write_csv(storage: Storage, export: RunExport, out: IO[str]) -> int:
    """The whole CSV to a text file; returns the number of data rows."""
    out.write(csv_preamble(export))
    rows = 0
    with contextlib.closing(export.rows(storage)) as source:
        for block in csv_blocks(export, source, 2000):
            out.write(block)
            rows += block.count("\n")
    return rows


# --- Excel --------------------------------------------------------------------------------------


def write_xlsx(storage: Storage, export: RunExport, out: IO[bytes]) -> int:
    """The run as a workbook: sheet "Data" (header row, then one row per sample time: a real
    date-time in UTC, Run Time in seconds, and each tag's value as a number, true/false or
    text), sheet "Run" (the metadata). Returns the number of data rows.

    Raises ExportTooLarge before writing to `out` when the run does not fit one sheet."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    data = workbook.create_sheet("Data")
    data.freeze_panes = "C2"
    data.append([_text_cell(data, h) for h in export.header()])
    started = export.run.started
    count = 0
    with contextlib.closing(export.rows(storage)) as source:
        for t, values in source:
            count += 1
            if count >= EXCEL_MAX_ROWS:
                _discard(data)
                raise ExportTooLarge(
                    f"run {export.run.run_id!r} has more than {EXCEL_MAX_ROWS - 1} sample "
                    "times, more than an Excel sheet holds; export it as CSV"
                )
            stamp = WriteOnlyCell(data, _excel_time(t))
            stamp.number_format = "yyyy-mm-dd hh:mm:ss.000"
            data.append([stamp, round(t - started, 3)] + [_xlsx_value(data, v) for v in values])
    meta = workbook.create_sheet("Run")
    for key, value in export.metadata():
        meta.append([_text_cell(meta, key), _text_cell(meta, value)])
    workbook.save(out)
    return count


def _discard(sheet: Any) -> None:
    """openpyxl keeps a write-only sheet's rows in a temporary file until the workbook is saved:
    remove it when the workbook never will be."""
    sheet.close()
    writer = getattr(sheet, "_writer", None)
    if writer is not None:
        writer.cleanup()


def _excel_time(t: float) -> datetime:
    """Excel has no time zones: the UTC time without one (the header says UTC)."""
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None)


_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""Control characters an .xlsx cannot hold."""


def _text_cell(sheet: Any, text: str) -> Any:
    """Text stays text: a value starting with '=' from an engine must not become a formula."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, _ILLEGAL.sub("\ufffd", text))
    cell.data_type = "s"
    return cell


def _xlsx_value(sheet: Any, value: ScalarValue) -> Any:
    if isinstance(value, str):
        return _text_cell(sheet, value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
