"""POST /api/auth/login: a random bearer token (stored hashed, with expiry) and the same token as
an HttpOnly, SameSite=Strict cookie for browsers."""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, Field

from aggregator.api.common import SESSION_COOKIE, ApiError, parse_body, respond
from aggregator.api.schemas import UserInfo
from aggregator.api.service import record
from aggregator.context import CONTEXT_KEY
from aggregator.security import new_token, token_hash, verify_password


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    token: str
    username: str
    role: str
    expires_in: float
    expires: float = 0.0
    user: UserInfo | None = None


async def login(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    body = await parse_body(request, LoginRequest)
    user = await ctx.read(ctx.storage.user_by_name, body.username)
    ok = user is not None and await ctx.read(verify_password, user["password_hash"], body.password)
    if not ok or user is None:
        await record(request.app, body.username, "login", new={"ok": False})
        raise ApiError(401, "wrong user name or password")
    token = new_token()
    lifetime = ctx.settings.session_lifetime
    await ctx.writer.call(ctx.storage.create_session, user["id"], token_hash(token), lifetime)
    await record(request.app, user["name"], "login", new={"ok": True})
    response = respond(
        LoginResponse(
            token=token,
            username=user["name"],
            role=user["role"],
            expires_in=lifetime,
            expires=time.time() + lifetime,
            user=UserInfo(name=user["name"], role=user["role"]),
        )
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime),
        httponly=True,
        samesite="Strict",
        secure=ctx.settings.secure_cookies,
        path="/",
    )
    return response


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/login", login)
