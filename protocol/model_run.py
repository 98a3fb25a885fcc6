"""run_model over the engine link (since 1.3): a method simulated on the unit's process model.

The aggregator asks with RunModel (answered at once by a CommandResult: queued, or refused with
a reason); the engine then reports the simulation's task status in ModelProgress frames, which
are not stored (a prediction is not plant data) and carry the RunModel's id. CancelModel ends
one as `interrupted`. Kept apart from protocol/messages.py, which only lists them in its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from protocol.models import FiniteJson, WireModel

ModelId = Annotated[str, Field(min_length=1, max_length=128, description="the RunModel's id")]
ModelStatus = Literal["pending", "working", "finished", "exception", "interrupted"]
MAX_MODEL_SECONDS = 30 * 86400.0


class RunModel(WireModel):
    """Simulate a method on the unit's process model (aggregator -> engine, since 1.3). Nothing
    on the unit changes; the engine runs it in a child process, one at a time."""

    type: Literal["RunModel"] = "RunModel"
    id: ModelId
    user: Annotated[str, Field(min_length=1, max_length=128)]
    text: str | None = Field(
        default=None, max_length=1_000_000, description="the method; None: the unit's current one"
    )
    speed: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="simulated seconds per wall second; None: as fast as possible",
    )
    duration: float | None = Field(
        default=None,
        gt=0,
        le=MAX_MODEL_SECONDS,
        allow_inf_nan=False,
        description="stop after this many simulated seconds (default: when the method stops, "
        "at most one simulated day)",
    )


class CancelModel(WireModel):
    """End a queued or running simulation as `interrupted` (aggregator -> engine, since 1.3);
    answered by a CommandResult, ok=false when the engine does not know it."""

    type: Literal["CancelModel"] = "CancelModel"
    id: Annotated[str, Field(min_length=1, max_length=128)]
    user: Annotated[str, Field(min_length=1, max_length=128)]
    model_id: ModelId


class ModelProgress(WireModel):
    """A simulation's task status (engine -> aggregator, not stored, since 1.3).

    pending: {position}; working: {progress 0..1, intermediate {run_time, block, marks,
    watches}} at least once a second; finished: {final}; exception: {reason, findings?};
    interrupted: {reason}. After finished, exception or interrupted nothing more is sent."""

    type: Literal["ModelProgress"] = "ModelProgress"
    model_id: ModelId
    status: ModelStatus
    data: FiniteJson = None
