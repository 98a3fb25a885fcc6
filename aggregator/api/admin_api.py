"""Users, engine tokens, the audit trail and the two public documents."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ROUTES_KEY, ApiRoutes, Call, Operation
from aggregator.api.openapi_doc import document
from aggregator.api.schemas import (
    AuditEntryView,
    AuditPage,
    AuditQuery,
    EngineTokenCreate,
    EngineTokenCreated,
    UserCreate,
    UserInfo,
    UserPatch,
    UserView,
)
from aggregator.api.service import ctx_of, record, state_of
from aggregator.context import AppContext
from aggregator.models import User as UserRow
from aggregator.security import hash_password, new_token, token_hash
from protocol import PROTOCOL_VERSION
from protocol.schema import message_schema

T_USER: sa.Table = UserRow.__table__  # type: ignore[attr-defined]

API_VERSION = "1.0"


# --- users -------------------------------------------------------------------------------------------


def _users(ctx: AppContext) -> list[UserView]:
    with ctx.storage.engine.connect() as conn:
        rows = conn.execute(sa.select(T_USER).order_by(T_USER.c.name)).all()
    return [
        UserView(name=r.name, role=r.role, created=r.created)
        for r in rows
        if r.role in ("viewer", "operator", "admin")
    ]


async def list_users(call: Call[None, None]) -> list[UserView]:
    ctx = ctx_of(call.app)
    return await ctx.read(_users, ctx)


async def create_user(call: Call[UserCreate, None]) -> UserInfo:
    admin = call.need_user()
    ctx = ctx_of(call.app)
    body = call.body
    password_hash = await ctx.read(hash_password, body.password)
    try:
        await ctx.writer.call(ctx.storage.add_user, body.name, body.role, password_hash)
    except ValueError as exc:
        raise ApiError(409, str(exc), "name") from None
    await record(call.app, admin, "user add", new={"name": body.name, "role": body.role})
    return UserInfo(name=body.name, role=body.role)


async def patch_user(call: Call[UserPatch, None]) -> UserInfo:
    admin = call.need_user()
    ctx = ctx_of(call.app)
    name = call.path("name")
    body = call.body
    password_hash = None
    if body.password is not None:
        password_hash = await ctx.read(hash_password, body.password)
    changed = await ctx.writer.call(ctx.storage.change_user, name, body.role, password_hash)
    if changed is None:
        raise ApiError(404, f"no user named {name!r}")
    old_role, new_role = changed
    await record(
        call.app,
        admin,
        "user change",
        old={"name": name, "role": old_role},
        new={"name": name, "role": new_role, "password_changed": body.password is not None},
    )
    return UserInfo.model_validate({"name": name, "role": new_role})


async def delete_user(call: Call[None, None]) -> None:
    admin = call.need_user()
    ctx = ctx_of(call.app)
    name = call.path("name")
    if name == admin.name:
        raise ApiError(409, "you cannot delete yourself; ask another admin", "name")

    role = await ctx.writer.call(ctx.storage.delete_user, name)
    if role is None:
        raise ApiError(404, f"no user named {name!r}")
    await record(call.app, admin, "user delete", old={"name": name, "role": role})


# --- engine tokens -------------------------------------------------------------------------------------


class EngineTokenNew(EngineTokenCreate):
    engine_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="the one engine id the token may register; default: the first it registers",
    )


class EngineTokenView(BaseModel):
    name: str
    engine_id: str | None = Field(description="bound engine id; null until it first registers")
    created: float
    revoked: bool
    revoked_at: float | None = None


async def create_engine_token(call: Call[EngineTokenNew, None]) -> EngineTokenCreated:
    admin = call.need_user()
    ctx = ctx_of(call.app)
    body = call.body
    token = new_token()
    try:
        await ctx.writer.call(
            ctx.storage.create_engine_token, body.name, token_hash(token), body.engine_id
        )
    except ValueError as exc:
        raise ApiError(409, str(exc), "name") from None
    await record(
        call.app,
        admin,
        "engine token create",
        unit_id=body.engine_id,
        new={"name": body.name, "engine_id": body.engine_id},
    )
    return EngineTokenCreated(name=body.name, token=token)


async def list_engine_tokens(call: Call[None, None]) -> list[EngineTokenView]:
    ctx = ctx_of(call.app)
    rows = await ctx.read(ctx.storage.list_engine_tokens)
    return [EngineTokenView.model_validate(row, from_attributes=True) for row in rows]


async def revoke_engine_token(call: Call[None, None]) -> None:
    """Refused from now on; the link of the engine using it ends at once (rule 1)."""
    admin = call.need_user()
    ctx = ctx_of(call.app)
    name = call.path("name")
    before = await ctx.writer.call(ctx.storage.revoke_engine_token, name)
    if before is None:
        raise ApiError(404, f"no engine token named {name!r}")
    ctx.token_watch.revoked(ctx, name)
    if not before.revoked:
        await record(
            call.app,
            admin,
            "engine token revoke",
            unit_id=before.engine_id,
            old={"name": name, "revoked": False},
            new={"name": name, "revoked": True},
        )


# --- audit -----------------------------------------------------------------------------------------------


async def audit_page(call: Call[None, AuditQuery]) -> AuditPage:
    ctx = ctx_of(call.app)
    trail = state_of(call.app).audit
    records, following = await ctx.read(
        lambda: trail.page(before=call.query.cursor, limit=call.query.limit)
    )
    return AuditPage(
        items=[AuditEntryView.model_validate(r, from_attributes=True) for r in records],
        next=following,
    )


# --- documents -------------------------------------------------------------------------------------------


async def openapi_json(call: Call[None, None]) -> dict[str, Any]:
    routes = call.app[ROUTES_KEY]
    return document(routes.operations, title="Setpoint aggregator API", version=API_VERSION)


async def protocol_schema(call: Call[None, None]) -> dict[str, Any]:
    schema = message_schema()
    schema["x-protocol-version"] = PROTOCOL_VERSION
    return schema


def setup(app: web.Application, routes: ApiRoutes) -> None:
    admin = ("admin",)
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET", "/api/users", "All users", "admin", response=list[UserView], tags=admin
                ),
                list_users,
            ),
            (
                Operation(
                    "POST",
                    "/api/users",
                    "Add a user",
                    "admin",
                    body=UserCreate,
                    response=UserInfo,
                    status=201,
                    errors=(409,),
                    tags=admin,
                    action="user add",
                    audit_invalid=True,
                ),
                create_user,
            ),
            (
                Operation(
                    "PATCH",
                    "/api/users/{name}",
                    "Change a user's role or password",
                    "admin",
                    body=UserPatch,
                    response=UserInfo,
                    errors=(404,),
                    tags=admin,
                    action="user change",
                    audit_invalid=True,
                ),
                patch_user,
            ),
            (
                Operation(
                    "DELETE",
                    "/api/users/{name}",
                    "Delete a user",
                    "admin",
                    status=204,
                    errors=(404, 409),
                    tags=admin,
                    action="user delete",
                    audit_invalid=True,
                ),
                delete_user,
            ),
            (
                Operation(
                    "POST",
                    "/api/engine-tokens",
                    "Create an engine token (shown once)",
                    "admin",
                    body=EngineTokenNew,
                    response=EngineTokenCreated,
                    status=201,
                    errors=(409,),
                    tags=admin,
                    action="engine token create",
                    audit_invalid=True,
                ),
                create_engine_token,
            ),
            (
                Operation(
                    "GET",
                    "/api/engine-tokens",
                    "All engine tokens: the engine id each is bound to, and whether revoked",
                    "admin",
                    response=list[EngineTokenView],
                    tags=admin,
                ),
                list_engine_tokens,
            ),
            (
                Operation(
                    "DELETE",
                    "/api/engine-tokens/{name}",
                    "Revoke an engine token; its engine's link ends at once",
                    "admin",
                    status=204,
                    errors=(404,),
                    tags=admin,
                    action="engine token revoke",
                    audit_invalid=True,
                ),
                revoke_engine_token,
            ),
            (
                Operation(
                    "GET",
                    "/api/audit",
                    "The audit trail, newest first",
                    "admin",
                    query=AuditQuery,
                    response=AuditPage,
                    tags=admin,
                ),
                audit_page,
            ),
            (
                Operation(
                    "GET",
                    "/api/protocol/schema",
                    "JSON Schema of the engine protocol",
                    None,
                    response=dict[str, Any],
                    tags=("documents",),
                ),
                protocol_schema,
            ),
            (
                Operation(
                    "GET",
                    "/api/openapi.json",
                    "This API as OpenAPI 3",
                    None,
                    response=dict[str, Any],
                    tags=("documents",),
                ),
                openapi_json,
            ),
        ],
    )
