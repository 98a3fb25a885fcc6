"""One registry of API operations that both serves the requests and documents them.

Each operation names the pydantic models of its query, body and response; the same models
validate the request, serialize the answer and produce `/api/openapi.json`, so the document can
never drift from what the server does. A small registry instead of a framework because the
contract's error shape (`{error, field}`) and plain function handlers fit it directly; the
libraries that would do this for aiohttp impose class-based views and their own error bodies.

The registry owns authentication, role checks, request validation and serialization of every
/api route; it raises `ApiError` and leaves rendering it to `errors.api_middleware`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from aggregator.api.errors import ApiError
from aggregator.api.roles import ROLE_RANK, ApiUser, Role
from protocol.validation import first_problem

B = TypeVar("B")
Q = TypeVar("Q")

JSON = "application/json"
NOT_LOGGED_IN = (
    "not logged in: POST /api/auth/login, then send the token as "
    "'Authorization: Bearer <token>' or the session cookie"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    """The response of an operation whose handler writes its body in chunks (a CSV export)
    instead of returning a model: documented as a string of `media_type`."""

    media_type: str
    charset: str = "utf-8"


@dataclass
class Streamed:
    """What the handler of a `Stream` operation returns once every check has passed (errors
    after the first chunk can no longer become an error body): the chunks, and the name the
    browser saves them as (header-safe; the handler makes it so)."""

    chunks: AsyncGenerator[bytes, None]
    filename: str | None = None


@dataclass
class Call(Generic[B, Q]):
    """What a handler gets: the validated query and body and the authenticated user."""

    request: web.Request
    body: B
    query: Q
    user: ApiUser | None
    cookies: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def app(self) -> web.Application:
        return self.request.app

    def need_user(self) -> ApiUser:
        if self.user is None:
            raise ApiError(401, "not logged in")
        return self.user

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        """Sent with the answer (aiohttp's set_cookie options)."""
        self.cookies.append((name, value, options))

    def del_cookie(self, name: str, *, path: str = "/") -> None:
        self.cookies.append((name, None, {"path": path}))


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]
Authenticate = Callable[[web.Request], Awaitable[ApiUser | None]]


@dataclass(frozen=True)
class Operation:
    """`response` is a type the result is serialized as, a `Stream`, or None (no body)."""

    method: str
    path: str
    summary: str
    role: Role | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass
class ApiRoutes:
    """Every operation, in registration order; each is served and documented from here."""

    authenticate: Authenticate
    operations: list[Operation] = field(default_factory=list)

    def add(self, app: web.Application, operation: Operation, handler: Handler) -> None:
        self.operations.append(operation)
        app.router.add_route(operation.method, operation.path, self._wrap(operation, handler))

    def add_all(self, app: web.Application, table: list[tuple[Operation, Handler]]) -> None:
        for operation, handler in table:
            self.add(app, operation, handler)

    def _wrap(
        self, op: Operation, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        adapter = (
            TypeAdapter(op.response)
            if op.response is not None and not isinstance(op.response, Stream)
            else None
        )

        async def serve(request: web.Request) -> web.StreamResponse:
            user = await self._user(op, request)
            query = None if op.query is None else _parse_query(request, op.query)
            body = None if op.body is None else await _parse_body(request, op.body)
            call: Call[Any, Any] = Call(request, body, query, user)
            result = await handler(call)
            if isinstance(op.response, Stream):
                return await _stream(request, op.response, result, call)
            if result is None or adapter is None:
                response = web.Response(status=204 if op.status == 200 else op.status)
            else:
                response = web.Response(
                    body=adapter.dump_json(result), status=op.status, content_type=JSON
                )
            _apply_cookies(response, call)
            return response

        return serve

    async def _user(self, op: Operation, request: web.Request) -> ApiUser | None:
        if op.role is None:
            return None
        user = await self.authenticate(request)
        if user is None:
            raise ApiError(401, NOT_LOGGED_IN)
        if ROLE_RANK[user.role] < ROLE_RANK[op.role]:
            raise ApiError(403, f"this needs the {op.role} role; {user.name} is {user.role}")
        return user


def _apply_cookies(response: web.StreamResponse, call: Call[Any, Any]) -> None:
    for name, value, options in call.cookies:
        if value is None:
            response.del_cookie(name, **options)
        else:
            response.set_cookie(name, value, **options)


async def _stream(
    request: web.Request, declared: Stream, result: Any, call: Call[Any, Any]
) -> web.StreamResponse:
    if not isinstance(result, Streamed):
        raise TypeError(f"{request.path}: a Stream operation's handler must return Streamed")
    response = web.StreamResponse(
        headers={"Content-Type": f"{declared.media_type}; charset={declared.charset}"}
    )
    if result.filename is not None:
        response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    _apply_cookies(response, call)
    async with contextlib.aclosing(result.chunks) as chunks:
        await response.prepare(request)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except ConnectionError:
            log.info("%s %s: the client went away mid-stream", request.method, request.path)
            return response
        except Exception:
            # the status line is sent: only a cut connection tells the client the body is short
            log.exception("%s %s failed mid-stream", request.method, request.path)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


def _invalid(exc: ValidationError, status: int, what: str) -> ApiError:
    problem = first_problem(exc)
    return ApiError(status, f"invalid {what}: {problem.line('body')}", problem.field)


def _parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = {k: request.query.getone(k) for k in request.query}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, 400, "query parameter") from None


async def _parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw:
        raise ApiError(400, "a JSON request body is required", "body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object", "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, 422, "request body") from None


ROUTES_KEY = web.AppKey("setpoint_api_routes", ApiRoutes)
