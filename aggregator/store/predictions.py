"""The prediction made when a run started (run_model on the run's method, issue 18): one row per
run, kept so the run view and the batch report can set what was expected beside what happened.

A failed prediction is kept too (status "failed" with the reason), so "none was made because the
unit has no process model" is told apart from "not made yet"."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator import models as m
from aggregator.store.tables import _table

T_PREDICTION = _table(m.RunPrediction)
REASON_CHARS = 2000


@dataclass(frozen=True)
class StoredPrediction:
    run_pk: int
    requested: float
    status: str
    """"finished" (result holds the final result) or "failed" (reason says why)."""
    reason: str
    result: dict[str, Any]


class RunPredictions:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock

    def save(self, run_pk: int, status: str, reason: str, result: dict[str, Any]) -> bool:
        """Keep the run's prediction; False when it already has one (the first one stays: it is
        the one made at Start)."""
        row = {
            "run_pk": run_pk,
            "requested": self.clock(),
            "status": status,
            "reason": reason[:REASON_CHARS],
            "result_json": json.dumps(result, separators=(",", ":")),
        }
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(T_PREDICTION.c.run_pk).where(T_PREDICTION.c.run_pk == run_pk)
            ).first()
            if exists is not None:
                return False
            conn.execute(T_PREDICTION.insert().values(**row))
        return True

    def exists(self, run_pk: int) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(T_PREDICTION.c.run_pk).where(T_PREDICTION.c.run_pk == run_pk)
                ).first()
                is not None
            )

    def of_run(self, run_pk: int) -> StoredPrediction | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_PREDICTION).where(T_PREDICTION.c.run_pk == run_pk)
            ).first()
        if row is None:
            return None
        loaded = json.loads(row.result_json or "{}")
        return StoredPrediction(
            run_pk=row.run_pk,
            requested=row.requested,
            status=row.status,
            reason=row.reason,
            result=loaded if isinstance(loaded, dict) else {},
        )
