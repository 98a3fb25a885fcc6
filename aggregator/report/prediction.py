"""The batch report's comparison of the prediction made at Start (run_model, issue 18) with what
the run did: duration and each mark's run time, predicted beside actual. Marks are paired by
text and occurrence (the second "Buffer A" predicted with the second one seen)."""

from __future__ import annotations

import time
from typing import Any

from aggregator.context import AppContext
from aggregator.store.predictions import RunPredictions
from aggregator.store.rows import RunRow

TITLE = "Prediction made at Start vs actual"
COLUMNS = ["What", "Predicted", "Actual", "Difference"]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _difference(predicted: float | None, actual: float | None) -> str:
    if predicted is None or actual is None:
        return "-"
    return f"{actual - predicted:+.1f} s"


def _pairs(
    predicted: list[tuple[str, float]], actual: list[tuple[str, float]]
) -> list[tuple[str, float | None, float | None]]:
    seen: dict[str, list[float]] = {}
    for text, t in actual:
        seen.setdefault(text, []).append(t)
    used: dict[str, int] = {}
    out: list[tuple[str, float | None, float | None]] = []
    for text, t in predicted:
        n = used.get(text, 0)
        used[text] = n + 1
        times = seen.get(text, [])
        out.append((text, t, times[n] if n < len(times) else None))
    for text, times in seen.items():
        out.extend((text, None, t) for t in times[used.get(text, 0) :])
    return out


def _marks(result: dict[str, Any]) -> list[tuple[str, float]]:
    marks = result.get("marks")
    out = []
    for mark in marks if isinstance(marks, list) else []:
        if isinstance(mark, dict) and isinstance(mark.get("run_time"), int | float):
            out.append((str(mark.get("text", "")), float(mark["run_time"])))
    return out


def prediction_rows(
    ctx: AppContext, run: RunRow, actual_marks: list[tuple[str, float]]
) -> list[list[str]] | None:
    """The rows under TITLE and COLUMNS; None when the run has no prediction (made before
    this existed, or not kept yet)."""
    stored = RunPredictions(ctx.storage.engine, time.time).of_run(int(run.pk))
    if stored is None:
        return None
    if stored.status != "finished":
        return [["No prediction", stored.reason or "-", "", ""]]
    result = stored.result
    raw = result.get("duration")
    duration = float(raw) if isinstance(raw, int | float) else None
    actual = run.stopped - run.started if run.stopped is not None else None
    rows = [
        [
            f"Duration (predicted end: {result.get('end_state', '-')})",
            _seconds(duration),
            _seconds(actual) if actual is not None else "running",
            _difference(duration, actual),
        ]
    ]
    for text, predicted, seen in _pairs(_marks(result), actual_marks):
        rows.append(
            [f"Mark: {text}", _seconds(predicted), _seconds(seen), _difference(predicted, seen)]
        )
    return rows
