"""One registry of API operations that both serves the requests and documents them.

Each operation names the pydantic models of its query, body and response; the same models
validate the request, serialize the answer and produce `/api/openapi.json`, so the document can
never drift from what the server does. A small registry instead of a framework because the
contract's error shape (`{error, field}`) and plain function handlers fit it directly; the
libraries that would do this for aiohttp impose class-based views and their own error bodies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from aggregator.api.roles import ROLE_RANK, ApiUser, Role
from protocol import Finding
from protocol.validation import first_problem

B = TypeVar("B")
Q = TypeVar("Q")

JSON = "application/json"


class ApiProblem(Exception):
    """An answer other than success: status, one line for people, and the field at fault."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.extra = extra or {}


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
    findings: list[Finding] | None = Field(
        default=None, description="PUT method refused by the engine: the analyzer's findings"
    )


def error_response(
    status: int, error: str, field: str | None = None, extra: dict[str, Any] | None = None
) -> web.Response:
    return web.json_response({"error": error, "field": field, **(extra or {})}, status=status)


@dataclass
class Call(Generic[B, Q]):
    """What a handler gets: the validated query and body and the authenticated user."""

    request: web.Request
    body: B
    query: Q
    user: ApiUser | None

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def app(self) -> web.Application:
        return self.request.app

    def need_user(self) -> ApiUser:
        if self.user is None:
            raise ApiProblem(401, "not logged in")
        return self.user


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]
Authenticate = Callable[[web.Request], Awaitable[ApiUser | None]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    role: Role | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    media_type: str = JSON
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""


def _first_problem(exc: ValidationError, status: int, what: str, prefix: str) -> ApiProblem:
    problem = first_problem(exc, prefix=prefix)
    return ApiProblem(status, f"invalid {what}: {problem.line('body')}", problem.field)


@dataclass
class ApiRoutes:
    """Every documented operation, in registration order."""

    authenticate: Authenticate | None = None
    operations: list[Operation] = field(default_factory=list)
    _adapters: dict[int, TypeAdapter[Any]] = field(default_factory=dict)

    def add(
        self,
        app: web.Application,
        operation: Operation,
        handler: Handler | None,
    ) -> None:
        """Serve and document `operation`; handler=None only documents a route served elsewhere."""
        self.operations.append(operation)
        if handler is None:
            return
        adapter = TypeAdapter(operation.response) if operation.response is not None else None
        app.router.add_route(
            operation.method, operation.path, self._wrap(operation, handler, adapter)
        )

    def _wrap(
        self, op: Operation, handler: Handler, adapter: TypeAdapter[Any] | None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                user = None
                if op.role is not None:
                    if self.authenticate is None:
                        raise ApiProblem(500, "authentication is not configured")
                    user = await self.authenticate(request)
                    if user is None:
                        raise ApiProblem(
                            401,
                            "not logged in: POST /api/auth/login, then send the token as "
                            "'Authorization: Bearer <token>' or the session cookie",
                        )
                    if ROLE_RANK[user.role] < ROLE_RANK[op.role]:
                        raise ApiProblem(
                            403, f"this needs the {op.role} role; {user.name} is {user.role}"
                        )
                query: Any = None
                if op.query is not None:
                    raw = {k: request.query.getone(k) for k in request.query}
                    try:
                        query = op.query.model_validate(raw)
                    except ValidationError as exc:
                        raise _first_problem(exc, 400, "query parameter", "") from None
                body: Any = None
                if op.body is not None:
                    body = await _parse_body(request, op.body)
                result = await handler(Call(request, body, query, user))
            except ApiProblem as problem:
                return error_response(problem.status, problem.error, problem.field, problem.extra)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None or adapter is None:
                return web.Response(status=204 if op.status == 200 else op.status)
            return web.Response(body=adapter.dump_json(result), status=op.status, content_type=JSON)

        return serve

    # --- the document ----------------------------------------------------------------------------

    def document(self, *, title: str, version: str) -> dict[str, Any]:
        inputs: list[
            tuple[tuple[int, str], Literal["validation", "serialization"], TypeAdapter[Any]]
        ] = []
        inputs.append(((-1, "error"), "serialization", TypeAdapter(ErrorBody)))
        for index, op in enumerate(self.operations):
            if op.body is not None:
                inputs.append(((index, "body"), "validation", TypeAdapter(op.body)))
            if op.query is not None:
                inputs.append(((index, "query"), "validation", TypeAdapter(op.query)))
            if op.response is not None:
                inputs.append(((index, "response"), "serialization", TypeAdapter(op.response)))
        key_map, defs = TypeAdapter.json_schemas(
            inputs, ref_template="#/components/schemas/{model}"
        )
        schemas: dict[str, Any] = dict(defs.get("$defs", {}))

        def schema_of(index: int, kind: str) -> dict[str, Any]:
            mode: Literal["validation", "serialization"] = (
                "validation" if kind in ("body", "query") else "serialization"
            )
            return dict(key_map[((index, kind), mode)])

        error_ref = schema_of(-1, "error")
        paths: dict[str, dict[str, Any]] = {}
        for index, op in enumerate(self.operations):
            spec: dict[str, Any] = {
                "operationId": _operation_id(op),
                "summary": op.summary,
                "tags": list(op.tags),
            }
            if op.description:
                spec["description"] = op.description
            parameters: list[dict[str, Any]] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", op.path)
            ]
            if op.query is not None:
                query_schema = _resolve(schema_of(index, "query"), schemas)
                required = set(query_schema.get("required", []))
                for name, prop in query_schema.get("properties", {}).items():
                    param: dict[str, Any] = {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": {k: v for k, v in prop.items() if k not in ("title",)},
                    }
                    if "description" in prop:
                        param["description"] = prop["description"]
                    parameters.append(param)
            if parameters:
                spec["parameters"] = parameters
            if op.body is not None:
                spec["requestBody"] = {
                    "required": True,
                    "content": {JSON: {"schema": schema_of(index, "body")}},
                }
            responses: dict[str, Any] = {}
            if op.response is None:
                responses[str(op.status if op.status != 200 else 204)] = {"description": "done"}
            elif op.media_type == JSON:
                responses[str(op.status)] = {
                    "description": "success",
                    "content": {JSON: {"schema": schema_of(index, "response")}},
                }
            else:
                responses[str(op.status)] = {
                    "description": "success",
                    "content": {op.media_type: {"schema": {"type": "string"}}},
                }
            statuses = set(op.errors)
            if op.role is not None:
                statuses |= {401, 403}
            if op.query is not None:
                statuses.add(400)
            if op.body is not None:
                statuses |= {400, 422}
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": _STATUS_TEXT.get(status, "error"),
                    "content": {JSON: {"schema": error_ref}},
                }
            spec["responses"] = responses
            spec["security"] = [] if op.role is None else [{"bearerAuth": []}, {"cookieAuth": []}]
            if op.role is not None:
                spec["x-required-role"] = op.role
            paths.setdefault(op.path, {})[op.method.lower()] = spec
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer"},
                    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "setpoint_session"},
                },
            },
        }


_STATUS_TEXT = {
    400: "bad request: malformed body or query (the field is named)",
    401: "not logged in",
    403: "role too low, or the unit requires a role the user lacks",
    404: "unknown unit, run or user",
    409: "conflict: stale version, or the engine refused in its current state",
    422: "invalid body (the field is named), or the engine refused the content",
    503: "unit offline or not answering",
}


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path.removeprefix("/api/")).replace("/", "_").replace("-", "_")
    return f"{op.method.lower()}_{words}"


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return cast(dict[str, Any], defs[ref.rsplit("/", 1)[1]])
    return schema


async def _parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw:
        raise ApiProblem(400, "a JSON request body is required", "body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(400, "request body is not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiProblem(422, "request body must be a JSON object", "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_problem(exc, 422, "request body", "") from None


ROUTES_KEY = web.AppKey("setpoint_api_routes", ApiRoutes)
