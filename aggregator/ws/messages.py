"""What a client may send on `/ws`, validated like every other input at the edge."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from protocol.validation import first_problem

RequestId = Annotated[str, Field(min_length=1, max_length=128)]
UnitId = Annotated[str, Field(min_length=1, max_length=256)]
Topic = Annotated[str, Field(min_length=1, max_length=400)]


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subscribe(_ClientMessage):
    action: Literal["subscribe"]
    topic: Topic
    id: RequestId | None = None


class Unsubscribe(_ClientMessage):
    action: Literal["unsubscribe"]
    topic: Topic
    id: RequestId | None = None


class PingAction(_ClientMessage):
    action: Literal["ping"]
    id: RequestId | None = None
    time: float | None = None


class PongAction(_ClientMessage):
    action: Literal["pong"]
    id: RequestId | None = None
    time: float | None = None


class RunAction(_ClientMessage):
    action: Literal["run"]
    id: RequestId
    unit: UnitId
    method: str | None = Field(default=None, max_length=1_000_000)


class StopAction(_ClientMessage):
    action: Literal["stop"]
    id: RequestId
    unit: UnitId


class StatusAction(_ClientMessage):
    action: Literal["status"]
    id: RequestId
    unit: UnitId


class CommandAction(_ClientMessage):
    action: Literal["command"]
    id: RequestId
    unit: UnitId
    pcode: str = Field(min_length=1, max_length=65536)


class GetTagAction(_ClientMessage):
    action: Literal["get_tag"]
    id: RequestId
    unit: UnitId
    tag: str = Field(min_length=1, max_length=256)


class GetStatsAction(_ClientMessage):
    action: Literal["get_stats"]
    id: RequestId
    unit: UnitId
    tag: str = Field(min_length=1, max_length=256)
    run_id: str | None = Field(default=None, max_length=256)
    start: float | None = None
    end: float | None = None


class RunModelAction(_ClientMessage):
    """Simulate a method on the unit's process model (aggregator/api/simulate_api.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    action: Literal["run_model"]
    id: RequestId
    unit: UnitId
    method: str | None = Field(default=None, max_length=1_000_000)
    speed: Literal["max"] | Annotated[float, Field(gt=0, allow_inf_nan=False)] = "max"
    for_: float | None = Field(default=None, alias="for", gt=0, le=30 * 86400, allow_inf_nan=False)


class CancelAction(_ClientMessage):
    """End the client's own running task `task` (a run_model) as interrupted."""

    action: Literal["cancel"]
    id: RequestId
    task: RequestId


TaskAction = (
    RunAction
    | StopAction
    | StatusAction
    | CommandAction
    | GetTagAction
    | GetStatsAction
    | RunModelAction
)

ClientMessage = Annotated[
    Subscribe | Unsubscribe | PingAction | PongAction | TaskAction | CancelAction,
    Field(discriminator="action"),
]

_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class BadMessage(ValueError):
    def __init__(self, error: str, field: str | None, request_id: str | None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field
        self.request_id = request_id

    def frame(self) -> dict[str, Any]:
        return {"type": "error", "id": self.request_id, "error": self.error, "field": self.field}


def parse(text: str | bytes) -> ClientMessage:
    """Parse one client frame or raise BadMessage naming the field at fault."""
    try:
        return _ADAPTER.validate_json(text)
    except ValidationError as exc:
        request_id = _request_id(text)
        problem = first_problem(exc, skip=1)
        if problem.kind == "json_invalid":
            raise BadMessage(f"not valid JSON: {problem.message}", None, None) from None
        if problem.kind == "union_tag_not_found":
            raise BadMessage("missing field 'action'", "action", request_id) from None
        if problem.kind == "union_tag_invalid":
            raise BadMessage("unknown action", "action", request_id) from None
        if problem.kind in ("model_attributes_type", "dict_type"):
            raise BadMessage("a frame must be a JSON object", None, None) from None
        where = problem.field
        raise BadMessage(f"{where}: {problem.message}", where, request_id) from None


def _request_id(text: str | bytes) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
