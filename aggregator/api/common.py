"""Shared pieces of the HTTP API: JSON errors, body validation and the authenticated user."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from aggregator.context import CONTEXT_KEY
from aggregator.security import token_hash
from protocol.validation import first_problem

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

SESSION_COOKIE = "setpoint_session"
USER_KEY = web.RequestKey("setpoint_user", dict)
PUBLIC_PATHS = frozenset({"/api/auth/login", "/api/openapi.json", "/api/protocol/schema"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(web.HTTPException):
    """An error answered as JSON `{error, detail?}` with the given status."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        self.status_code = status
        body: dict[str, Any] = {"error": message, "field": None}
        if detail is not None:
            body["detail"] = detail
        super().__init__(text=json.dumps(body), content_type="application/json")


def respond(model: BaseModel | list[Any], status: int = 200) -> web.Response:
    text = model.model_dump_json() if isinstance(model, BaseModel) else json.dumps(model)
    return web.Response(text=text, status=status, content_type="application/json")


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        fields = [".".join(str(p) for p in e["loc"]) or "body" for e in errors]
        detail = [{"field": f, "problem": e["msg"]} for f, e in zip(fields, errors, strict=True)]
        first = first_problem(exc)
        raise ApiError(
            422, f"invalid request body: {first.field or 'body'}: {first.message}", detail
        ) from None


def current_user(request: web.Request) -> dict[str, Any]:
    user: dict[str, Any] = request[USER_KEY]
    return user


def _request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(SESSION_COOKIE) or None


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication for /api, and JSON (never a stack trace) for every error there."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        if request.path not in PUBLIC_PATHS:
            token = _request_token(request)
            ctx = request.app[CONTEXT_KEY]
            user = (
                None
                if token is None
                else await ctx.read(ctx.storage.session_user, token_hash(token))
            )
            if user is None:
                raise ApiError(
                    401,
                    "not logged in: POST /api/auth/login, then send the token "
                    "as 'Authorization: Bearer <token>' or the session cookie",
                )
            request[USER_KEY] = user
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        raise ApiError(exc.status_code, exc.reason) from None
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        raise ApiError(500, "internal error; see the aggregator log") from None
