"""`/api/methods`: the method library (named methods, immutable versions, their states and
signatures), and loading a library version onto a unit through the ordinary SetMethod path."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aggregator.api import actions, approval
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.records_schemas import (
    LibraryMethod,
    LibraryMethodSummary,
    LibraryVersion,
    MethodCreate,
    MethodLoad,
    MethodLoaded,
    MethodVersionPut,
    UnitMethodSource,
    UnitSourceView,
)
from aggregator.api.service import (
    ctx_of,
    current_method,
    need_operator,
    record,
    require_control,
    require_unit,
)
from aggregator.api.signatures_api import verified
from aggregator.context import AppContext
from aggregator.store.methods import StaleVersion, text_sha256
from aggregator.store.rows import MethodVersionRow, SignatureRow
from aggregator.store.signatures import method_version_parts

TAGS = ("methods",)


def _version_view(
    ctx: AppContext, version: MethodVersionRow, sigs: list[SignatureRow]
) -> LibraryVersion:
    return LibraryVersion(
        id=version.id,
        method_id=version.method_id,
        name=version.name,
        version=version.version,
        state=version.state,
        author=version.author,
        created=version.created,
        text=version.text,
        sha256=version.sha256,
        signatures=verified(ctx, sigs, method_version_parts(version)) if sigs else [],
    )


def _method_view(ctx: AppContext, method_id: int) -> LibraryMethod | None:
    found = ctx.storage.methods.get(method_id)
    if found is None:
        return None
    versions = found.versions
    sigs = ctx.storage.signatures.of_records("method_version", [v.id for v in versions])
    return LibraryMethod(
        id=found.id,
        name=found.name,
        created=found.created,
        created_by=found.created_by,
        versions=[_version_view(ctx, v, sigs[v.id]) for v in versions],
    )


def _method_id(call: Call[Any, Any]) -> int:
    try:
        return int(call.path("method_id"))
    except ValueError:
        raise ApiError(404, f"no method with id {call.path('method_id')!r}") from None


async def list_methods(call: Call[None, None]) -> list[LibraryMethodSummary]:
    call.need_user()
    ctx = ctx_of(call.app)
    rows = await ctx.read(ctx.storage.methods.list_methods)
    return [LibraryMethodSummary.model_validate(r, from_attributes=True) for r in rows]


async def get_method(call: Call[None, None]) -> LibraryMethod:
    call.need_user()
    ctx = ctx_of(call.app)
    method_id = _method_id(call)
    found = await ctx.read(_method_view, ctx, method_id)
    if found is None:
        raise ApiError(404, f"no method with id {method_id}")
    return found


async def create_method(call: Call[MethodCreate, None]) -> LibraryMethod:
    user = call.need_user()
    need_operator(user)
    ctx = ctx_of(call.app)
    body = call.body
    try:
        created = await ctx.writer.call(ctx.storage.methods.create, body.name, body.text, user.name)
    except ValueError as exc:
        raise ApiError(409, str(exc), "name") from None
    await record(
        call.app,
        user,
        "method library create",
        new={"method_id": created.id, "name": body.name, "version": 1, "text": body.text},
    )
    view = await ctx.read(_method_view, ctx, int(created.id))
    assert view is not None
    return view


async def add_version(call: Call[MethodVersionPut, None]) -> LibraryVersion:
    user = call.need_user()
    need_operator(user)
    ctx = ctx_of(call.app)
    method_id = _method_id(call)
    body = call.body
    try:
        version = await ctx.writer.call(
            ctx.storage.methods.add_version, method_id, body.text, user.name, body.expected_version
        )
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except StaleVersion as exc:
        raise ApiError(
            409,
            f"the method is at version {exc.current}, not {body.expected_version}: someone "
            "else saved a version; reload and merge",
            "expected_version",
        ) from None
    await record(
        call.app,
        user,
        "method library version",
        new={
            "method_id": method_id,
            "name": version.name,
            "version": version.version,
            "text": body.text,
        },
    )
    return _version_view(ctx, version, [])


async def unit_source(app: web.Application, unit_id: str) -> UnitMethodSource | None:
    ctx = ctx_of(app)
    source = await ctx.read(ctx.storage.methods.unit_source, unit_id)
    if source is None:
        return None
    current = await current_method(app, unit_id)
    return UnitMethodSource(
        method_id=source.version.method_id,
        name=source.version.name,
        version=source.version.version,
        state=source.version.state,
        loaded=source.loaded,
        loaded_by=source.loaded_by,
        modified=current is None or text_sha256(current.text) != source.version.sha256,
        require_approved=approval.requires_approval(app, unit_id),
    )


async def get_unit_source(call: Call[None, None]) -> UnitSourceView:
    unit_id = call.path("unit_id")
    require_unit(call.app, call.need_user(), unit_id)
    return UnitSourceView(source=await unit_source(call.app, unit_id))


async def load(call: Call[MethodLoad, None]) -> MethodLoaded:
    user = call.need_user()
    unit_id = call.path("unit_id")
    require_control(call.app, user, unit_id)
    ctx = ctx_of(call.app)
    body = call.body
    version = await ctx.read(ctx.storage.methods.version, body.method_id, body.version)
    if version is None:
        raise ApiError(404, f"no method {body.method_id} version {body.version}")
    before = await current_method(call.app, unit_id)
    saved = await actions.set_method(
        call.app,
        user,
        unit_id,
        version.text,
        before.version if before is not None else 0,
        source={
            "method_id": version.method_id,
            "name": version.name,
            "version": version.version,
            "state": version.state,
            "sha256": version.sha256,
        },
    )
    await ctx.writer.call(
        ctx.storage.methods.set_unit_source, unit_id, version.id, version.text, user.name
    )
    return MethodLoaded(
        version=saved.version,
        findings=saved.findings,
        findings_omitted=saved.findings_omitted,
        source=await unit_source(call.app, unit_id),
    )


def setup(app: web.Application, routes: ApiRoutes) -> None:
    path = "/api/methods"
    unit = "/api/units/{unit_id}"
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    path,
                    "The method library: each method's newest and approved version",
                    "viewer",
                    response=list[LibraryMethodSummary],
                    tags=TAGS,
                ),
                list_methods,
            ),
            (
                Operation(
                    "POST",
                    path,
                    "Add a method to the library (its version 1, a draft)",
                    "operator",
                    body=MethodCreate,
                    response=LibraryMethod,
                    status=201,
                    errors=(403, 409, 422),
                    tags=TAGS,
                    action="method library create",
                ),
                create_method,
            ),
            (
                Operation(
                    "GET",
                    f"{path}/{{method_id}}",
                    "A library method: every version with its state, author and signatures",
                    "viewer",
                    response=LibraryMethod,
                    errors=(404,),
                    tags=TAGS,
                ),
                get_method,
            ),
            (
                Operation(
                    "PUT",
                    f"{path}/{{method_id}}",
                    "Add a version (a draft); versions never change once made",
                    "operator",
                    body=MethodVersionPut,
                    response=LibraryVersion,
                    status=201,
                    errors=(403, 404, 409, 422),
                    tags=TAGS,
                    action="method library version",
                ),
                add_version,
            ),
            (
                Operation(
                    "POST",
                    f"{unit}/method/load",
                    "Put a library version on a unit (a SetMethod; the unit's method then "
                    "names its source)",
                    "operator",
                    body=MethodLoad,
                    response=MethodLoaded,
                    errors=(403, 404, 409, 422, 503),
                    tags=("units", *TAGS),
                    action="method load",
                ),
                load,
            ),
            (
                Operation(
                    "GET",
                    f"{unit}/method/source",
                    "The library version loaded on the unit (null: none), its state, and "
                    "whether the unit's text was changed since",
                    "viewer",
                    response=UnitSourceView,
                    errors=(403, 404),
                    tags=("units", *TAGS),
                ),
                get_unit_source,
            ),
        ],
    )
