"""`/api/openapi.json` from the registry's operations (openapi.py): the same pydantic models that
validate and serialize each call give its schemas, so the document cannot drift from the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import TypeAdapter

from aggregator.api.errors import ErrorBody
from aggregator.api.openapi import JSON, Operation, Stream

Mode = Literal["validation", "serialization"]

_STATUS_TEXT = {
    400: "bad request: malformed body or query (the field is named)",
    401: "not logged in",
    403: "role too low, the unit requires a role the user lacks, or a cookie-authenticated "
    "change from another site or not sent as JSON",
    404: "unknown unit, run or user",
    409: "conflict: stale version, or the engine refused in its current state",
    422: "invalid body (the field is named), or the engine refused the content",
    429: "too many failed logins: wait the Retry-After seconds",
    503: "unit offline or not answering",
}
_ERROR = (-1, "error")


@dataclass(frozen=True)
class _Schemas:
    """Every model's JSON Schema, made in one pass so shared models become one component."""

    keys: dict[tuple[tuple[int, str], Mode], Any]
    components: dict[str, Any]

    @classmethod
    def of_operations(cls, operations: list[Operation]) -> _Schemas:
        inputs: list[tuple[tuple[int, str], Mode, TypeAdapter[Any]]] = [
            (_ERROR, "serialization", TypeAdapter(ErrorBody))
        ]
        for index, op in enumerate(operations):
            if op.body is not None:
                inputs.append(((index, "body"), "validation", TypeAdapter(op.body)))
            if op.query is not None:
                inputs.append(((index, "query"), "validation", TypeAdapter(op.query)))
            if op.response is not None and not isinstance(op.response, Stream):
                inputs.append(((index, "response"), "serialization", TypeAdapter(op.response)))
        keys, defs = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
        return cls(dict(keys), dict(defs.get("$defs", {})))

    def of(self, index: int, kind: str) -> dict[str, Any]:
        mode: Mode = "validation" if kind in ("body", "query") else "serialization"
        return dict(self.keys[((index, kind), mode)])

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return cast(dict[str, Any], self.components[ref.rsplit("/", 1)[1]])
        return schema


def document(operations: list[Operation], *, title: str, version: str) -> dict[str, Any]:
    schemas = _Schemas.of_operations(operations)
    paths: dict[str, dict[str, Any]] = {}
    for index, op in enumerate(operations):
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(index, op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "setpoint_session"},
            },
        },
    }


def _operation(index: int, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": list(op.tags),
    }
    if op.description:
        spec["description"] = op.description
    parameters = _parameters(index, op, schemas)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas.of(index, "body")}},
        }
    spec["responses"] = _responses(index, op, schemas)
    spec["security"] = [] if op.role is None else [{"bearerAuth": []}, {"cookieAuth": []}]
    if op.role is not None:
        spec["x-required-role"] = op.role
    return spec


def _parameters(index: int, op: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is None:
        return parameters
    query_schema = schemas.resolve(schemas.of(index, "query"))
    required = set(query_schema.get("required", []))
    for name, prop in query_schema.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
        }
        if "description" in prop:
            param["description"] = prop["description"]
        parameters.append(param)
    return parameters


def _responses(index: int, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.response is None:
        responses[str(op.status if op.status != 200 else 204)] = {"description": "done"}
    elif isinstance(op.response, Stream):
        responses[str(op.status)] = {
            "description": "success, streamed",
            "content": {op.response.media_type: {"schema": {"type": "string"}}},
        }
    else:
        responses[str(op.status)] = {
            "description": "success",
            "content": {JSON: {"schema": schemas.of(index, "response")}},
        }
    statuses = set(op.errors)
    if op.role is not None:
        statuses |= {401, 403}
    if op.query is not None:
        statuses.add(400)
    if op.body is not None:
        statuses |= {400, 422}
    error = schemas.of(*_ERROR)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "error"),
            "content": {JSON: {"schema": error}},
        }
    return responses


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path.removeprefix("/api/")).replace("/", "_").replace("-", "_")
    return f"{op.method.lower()}_{words}"
