"""Who is asking: login (a random bearer token, stored hashed with an expiry, and the same token
as an HttpOnly, SameSite=Strict cookie for browsers), logout, `me`, and the authentication the
registry runs for every operation that needs a role (and /ws on its upgrade request)."""

from __future__ import annotations

import math
import time

from aiohttp import web

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.roles import ApiUser, is_role
from aggregator.api.schemas import LoginRequest, LoginResult, UserInfo
from aggregator.api.service import ctx_of, record, state_of
from aggregator.security import dummy_password_hash, new_token, token_hash, verify_password
from aggregator.store.rows import UserRow

SESSION_COOKIE = "setpoint_session"


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(SESSION_COOKIE) or None


async def authenticate(request: web.Request) -> ApiUser | None:
    """The user behind a bearer token or session cookie; None when there is none or it expired."""
    token = request_token(request)
    if not token:
        return None
    ctx = ctx_of(request.app)
    row = await ctx.read(ctx.storage.session_user, token_hash(token))
    if row is None or not is_role(row.role):
        return None
    return ApiUser(row.id, row.name, row.role)


def client_address(request: web.Request) -> str:
    """The address login throttling counts against: the peer, or behind a trusted reverse proxy
    the address the proxy appended last to X-Forwarded-For (earlier ones the client can forge)."""
    if ctx_of(request.app).settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.remote or "unknown"


def _password_matches(user: UserRow | None, password: str) -> bool:
    """An unknown name is checked against a dummy hash: the same argon2 work as a wrong
    password, so the time taken does not tell which names exist."""
    stored = user.password_hash if user is not None else None
    if stored is None:
        verify_password(dummy_password_hash(), password)
        return False
    return verify_password(stored, password)


async def login(call: Call[LoginRequest, None]) -> LoginResult:
    ctx = ctx_of(call.app)
    state = state_of(call.app)
    body = call.body
    address = client_address(call.request)
    keys = [f"user {body.username.casefold()}", f"address {address}"]
    now = state.throttle_clock()
    wait = state.throttle.retry_after(keys, now)
    if wait > 0:
        seconds = math.ceil(wait)
        refused = ApiError(
            429,
            f"too many failed logins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
        refused.audited = True  # the lockout was recorded when it began
        raise refused
    # counted before the (slow) check, so parallel guesses cannot slip past the limit
    lockouts = state.throttle.failure(keys, now)
    user = await ctx.read(ctx.storage.user_by_name, body.username)
    ok = await ctx.read(_password_matches, user, body.password)
    role = user.role if user is not None else ""
    if not ok or user is None or not is_role(role):
        reason = "wrong user name or password"
        await record(
            call.app,
            body.username,
            "login",
            new={"ok": False, "result": reason, "status": 401, "address": address},
        )
        for lockout in lockouts:
            await record(
                call.app,
                body.username,
                "login lockout",
                new={
                    "locked": lockout.key,
                    "seconds": lockout.seconds,
                    "failures": lockout.failures,
                    "address": address,
                },
            )
        refused = ApiError(401, reason)
        refused.audited = True
        raise refused
    state.throttle.success(keys)
    token = new_token()
    lifetime = ctx.settings.session_lifetime
    await ctx.writer.call(ctx.storage.create_session, user.id, token_hash(token), lifetime)
    await record(call.app, user.name, "login", new={"ok": True, "address": address})
    call.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime),
        httponly=True,
        samesite="Strict",
        secure=ctx.settings.secure_cookies,
        path="/",
    )
    return LoginResult(
        token=token,
        expires=time.time() + lifetime,
        user=UserInfo(name=user.name, role=role),
        username=user.name,
        role=role,
        expires_in=lifetime,
    )


async def logout(call: Call[None, None]) -> None:
    user = call.need_user()
    token = request_token(call.request)
    ctx = ctx_of(call.app)
    if token:
        await ctx.writer.call(ctx.storage.end_session, token_hash(token))
    await record(call.app, user, "logout")
    call.del_cookie(SESSION_COOKIE, path="/")


async def me(call: Call[None, None]) -> UserInfo:
    user = call.need_user()
    return UserInfo(name=user.name, role=user.role)


def setup(app: web.Application, routes: ApiRoutes) -> None:
    tags = ("auth",)
    routes.add_all(
        app,
        [
            (
                Operation(
                    "POST",
                    "/api/auth/login",
                    "Log in: a bearer token and the HttpOnly, SameSite=Strict session cookie",
                    None,
                    body=LoginRequest,
                    response=LoginResult,
                    errors=(401, 403, 429),
                    tags=tags,
                    action="login",
                ),
                login,
            ),
            (
                Operation(
                    "POST",
                    "/api/auth/logout",
                    "End this session (token and cookie)",
                    "viewer",
                    status=204,
                    tags=tags,
                ),
                logout,
            ),
            (
                Operation(
                    "GET", "/api/auth/me", "Who am I", "viewer", response=UserInfo, tags=tags
                ),
                me,
            ),
        ],
    )
