"""One registry of API operations that both serves the requests and documents them.

Each operation names the pydantic models of its query, body and response; the same models
validate the request, serialize the answer and produce `/api/openapi.json`, so the document can
never drift from what the server does. A small registry instead of a framework because the
contract's error shape (`{error, field}`) and plain function handlers fit it directly; the
libraries that would do this for aiohttp impose class-based views and their own error bodies.

The registry owns authentication, the cross-site check of cookie-authenticated changes (origin.py),
role checks, request validation and serialization of every /api route; it raises `ApiError` and
leaves rendering it to `errors.api_middleware`. It is also the one place where refusals are
audited: every 403 and 409 (and, for operations marked `audit_invalid`, every other 4xx but 401)
goes to `on_refusal` unless whoever raised it has recorded it already (`ApiError.audited`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from aggregator.api.errors import ApiError
from aggregator.api.origin import SAFE_METHODS, CrossSiteGuard, bearer_token_sent
from aggregator.api.roles import ROLE_RANK, ApiUser, Role
from protocol.validation import first_problem

B = TypeVar("B")
Q = TypeVar("Q")

JSON = "application/json"
NOT_LOGGED_IN = (
    "not logged in: POST /api/auth/login, then send the token as "
    "'Authorization: Bearer <token>' or the session cookie"
)

RAW_BODY_KEY = web.RequestKey("setpoint_raw_body", dict)
"""Where the registry keeps a request's parsed JSON body, for the audit of a refused one."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    """The response of an operation whose handler writes its body in chunks (a CSV export)
    instead of returning a model: documented as a string of `media_type`."""

    media_type: str
    charset: str | None = "utf-8"  # None: a binary file (a workbook)


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
OnRefusal = Callable[["Operation", web.Request, ApiUser | None, ApiError], Awaitable[None]]


@dataclass(frozen=True)
class Operation:
    """`response` is a type the result is serialized as, a `Stream`, or None (no body).
    `action` names the operation in the audit trail (default "METHOD /path")."""

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
    action: str | None = None
    audit_invalid: bool = False

    @property
    def audit_name(self) -> str:
        return self.action or f"{self.method} {self.path}"


@dataclass
class ApiRoutes:
    """Every operation, in registration order; each is served and documented from here."""

    authenticate: Authenticate
    cookie_name: str = "setpoint_session"
    guard: CrossSiteGuard = field(default_factory=CrossSiteGuard)
    on_refusal: OnRefusal | None = None
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
            call: Call[Any, Any] = Call(request, None, None, user)
            try:
                self._admit(op, request, user)
                call.query = None if op.query is None else _parse_query(request, op.query)
                call.body = None if op.body is None else await _parse_body(request, op.body)
                result = await handler(call)
            except ApiError as error:
                await self._refused(op, request, user, error)
                raise
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
        """The 401 of a request without a valid session is not audited: there is nobody to
        name, and anyone could fill the trail with them."""
        if op.role is None:
            return None
        user = await self.authenticate(request)
        if user is None:
            raise ApiError(401, NOT_LOGGED_IN)
        return user

    def _admit(self, op: Operation, request: web.Request, user: ApiUser | None) -> None:
        if request.method not in SAFE_METHODS and not bearer_token_sent(request):
            if user is None:
                problem = self.guard.login_problem(request)
            elif self.cookie_name in request.cookies:
                problem = self.guard.change_problem(request)
            else:
                problem = None
            if problem is not None:
                raise ApiError(403, problem)
        if user is not None and op.role is not None and ROLE_RANK[user.role] < ROLE_RANK[op.role]:
            raise ApiError(403, f"this needs the {op.role} role; {user.name} is {user.role}")

    async def _refused(
        self, op: Operation, request: web.Request, user: ApiUser | None, error: ApiError
    ) -> None:
        if self.on_refusal is None or error.audited:
            return
        if error.status in (403, 409) or (
            op.audit_invalid and 400 <= error.status < 500 and error.status != 401
        ):
            error.audited = True
            await self.on_refusal(op, request, user, error)


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
    charset = f"; charset={declared.charset}" if declared.charset else ""
    response = web.StreamResponse(headers={"Content-Type": declared.media_type + charset})
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


class _NotFinite(Exception):
    pass


def _no_constant(_name: str) -> float:
    raise _NotFinite  # NaN, Infinity: not JSON, and no field means them


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite
    return value


async def _parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw:
        raise ApiError(400, "a JSON request body is required", "body")
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except _NotFinite:
        raise ApiError(400, "request body has a number out of range", "body") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON", "body") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object", "body")
    request[RAW_BODY_KEY] = data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, 422, "request body") from None


ROUTES_KEY = web.AppKey("setpoint_api_routes", ApiRoutes)
