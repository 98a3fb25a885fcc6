"""Plot data and statistics of a run, read from storage and decimated on the server.

Runs in a reader thread: decoding chunks and decimating are CPU work that must not stall the
event loop (ingest and every websocket share it).
"""

from __future__ import annotations

import math
from typing import Any

from aggregator.api.schemas import Annotation, PlotData, PlotSeries
from aggregator.decimate import decimate, is_numeric
from aggregator.store import Storage
from aggregator.store.rows import RunRow
from protocol import ScalarValue, UodDescription


class UnknownTags(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _uod(run: RunRow) -> UodDescription | None:
    try:
        return UodDescription.model_validate_json(run.uod_json or "{}")
    except ValueError:
        return None


def _clean(value: ScalarValue) -> ScalarValue:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite(values: list[ScalarValue]) -> list[ScalarValue]:
    """The values with NaN and infinities as None (JSON has neither), after decimating.
    Checked in one pass in C for the usual all-number series."""
    try:
        if all(map(math.isfinite, values)):  # type: ignore[arg-type]
            return values
    except (TypeError, OverflowError):  # None or text among them, or an int beyond floats
        pass
    return [_clean(x) for x in values]


def build_plot(
    storage: Storage,
    run: RunRow,
    names: list[str] | None,
    start: float | None,
    end: float | None,
    points: int,
) -> PlotData:
    uod = _uod(run)
    annotation_tags = set(uod.plot.annotation_tags) if uod is not None else {"Mark"}
    x_axis = uod.plot.x_axis if uod is not None else "Run Time"
    started = float(run.started)
    with storage.engine.connect() as conn:
        tags = storage.run_tags(conn, run.pk)
        by_name: dict[str, tuple[int | None, str | None]] = {
            name: (tag_id, unit) for tag_id, name, unit in tags
        }
        if names is not None:
            # A tag of the run's UOD that has no samples (yet) is an empty series: a plot of
            # several tags must not fail because one has not changed since the run started.
            declared = {t.name: t.unit for t in uod.tags} if uod is not None else {}
            missing = [n for n in names if n not in by_name and n not in declared]
            if missing:
                raise UnknownTags(missing)
            for n in names:
                by_name.setdefault(n, (None, declared.get(n)))
            wanted = names
        else:
            wanted = [name for _, name, _ in tags]
        # An open end reads to the end of the stored data: no need to find where that is first
        # (a scan of every chunk row of the run).
        t0 = start if start is not None else -math.inf
        t1 = end if end is not None else math.inf
        series: list[PlotSeries] = []
        annotations: list[Annotation] = []
        for name in wanted:
            tag_id, unit = by_name[name]
            samples: list[tuple[float, ScalarValue]] = []
            if tag_id is None:
                series.append(PlotSeries(tag=name, unit=unit, t=[], run_time=[], v=[]))
                continue
            if name in annotation_tags:  # annotations need every change
                samples, _ = storage.read_samples(run.pk, tag_id, t0, t1, conn)
                dt, dv = decimate([s[0] for s in samples], [s[1] for s in samples], points)
            else:
                dt, dv, _ = storage.read_decimated(run.pk, tag_id, t0, t1, points, conn)
            # Built here from stored numbers and strings: validating ~100,000 values again
            # cost a fifth of a 100-tag plot.
            series.append(
                PlotSeries.model_construct(
                    tag=name,
                    unit=unit,
                    t=dt,
                    run_time=[x - started for x in dt],
                    v=_finite(dv),
                )
            )
            if name in annotation_tags:
                previous: object = object()
                for ts, value in samples:
                    if value != previous and value not in (None, ""):
                        annotations.append(
                            Annotation(t=ts, run_time=ts - started, tag=name, text=str(value))
                        )
                    previous = value
    annotations.sort(key=lambda a: a.t)
    return PlotData(x_axis=x_axis, run_id=run.run_id, series=series, annotations=annotations)


def tag_stats(
    storage: Storage, run: RunRow, name: str, start: float | None, end: float | None
) -> dict[str, Any] | None:
    """min, max, mean, last and count of one tag over a run or a window; None: no such tag."""
    with storage.engine.connect() as conn:
        tags = {n: tag_id for tag_id, n, _ in storage.run_tags(conn, run.pk)}
        if name not in tags:
            return None
        span = storage.run_time_range(conn, run.pk) or (0.0, 0.0)
        samples, _ = storage.read_samples(
            run.pk,
            tags[name],
            start if start is not None else span[0],
            end if end is not None else span[1],
            conn,
        )
    numbers = [float(v) for _, v in samples if is_numeric(v) and math.isfinite(float(v))]  # type: ignore[arg-type]
    last = samples[-1] if samples else None
    return {
        "run_id": run.run_id,
        "tag": name,
        "count": len(samples),
        "min": min(numbers) if numbers else None,
        "max": max(numbers) if numbers else None,
        "mean": sum(numbers) / len(numbers) if numbers else None,
        "last": _clean(last[1]) if last else None,
        "last_time": last[0] if last else None,
        "start": start,
        "end": end,
    }


def parse_tag_list(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return list(dict.fromkeys(names)) or None
