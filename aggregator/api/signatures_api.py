"""`/api/signatures`: electronic signatures on method versions and runs (21 CFR Part 11).

Every signing asks for the password again (11.200(a)(1): both components at each signing; a
session alone signs nothing), and every attempt is audited, accepted or refused. A viewer never
signs; the author of a method version may sign it only as "authored" (11.10(g), separation of
duties); a version is reviewed from draft, approved from reviewed by someone other than its
reviewer, and a run is reviewed or released only once it stopped. Signatures are never edited or
deleted: there is no route that could."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from aggregator.api.auth import _password_matches
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.records_schemas import SignatureView, SignRequest, Verification
from aggregator.api.roles import ApiUser
from aggregator.api.service import ctx_of, record, require_run, state_of
from aggregator.context import AppContext
from aggregator.store.rows import SignatureRow, UserRow
from aggregator.store.signatures import MEANINGS, audit_fields, check, method_version_parts
from aggregator.store.tables import T_RUN

TAGS = ("signatures",)
ACTION = "signature"


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def view(row: SignatureRow, verdict: tuple[bool, list[str], str] | None = None) -> SignatureView:
    return SignatureView(
        id=row.id,
        kind=row.kind,
        record_id=row.record_id,
        label=row.label,
        meaning=row.meaning,
        user=row.user,
        full_name=row.full_name,
        time=row.time,
        time_utc=utc(row.time),
        sha256=row.sha256,
        comment=row.comment,
        valid=None if verdict is None else verdict[0],
        reason="" if verdict is None else verdict[2],
    )


def current_parts(ctx: AppContext, kind: str, record_id: int) -> dict[str, str] | None:
    storage = ctx.storage
    if kind == "method_version":
        version = storage.methods.version_by_id(record_id)
        return None if version is None else method_version_parts(version)
    return storage.signatures.runs.parts(record_id)


def verified(
    ctx: AppContext, rows: list[SignatureRow], parts: dict[str, str] | None
) -> list[SignatureView]:
    """Views of one record's signatures, each checked against the record's current parts."""
    store = ctx.storage.signatures
    return [view(row, check(row, parts, store.audit_entry(row.audit_id))) for row in rows]


def record_signatures(ctx: AppContext, kind: str, record_id: int) -> list[SignatureView]:
    rows = ctx.storage.signatures.of_record(kind, record_id)
    if not rows:
        return []
    return verified(ctx, rows, current_parts(ctx, kind, record_id))


# --- signing --------------------------------------------------------------------------------------


async def _target(app: web.Application, user: ApiUser, body: SignRequest) -> dict[str, Any]:
    """The record to sign: kind, record_id, label, its current state, author, unit, run."""
    ctx = ctx_of(app)
    rec = body.record
    if rec.kind == "method_version":
        if rec.version is None:
            raise ApiError(422, "a method version is named by id and version", "record.version")
        try:
            method_id = int(rec.id)
        except ValueError:
            raise ApiError(422, "a method's id is a number", "record.id") from None
        version = await ctx.read(ctx.storage.methods.version, method_id, rec.version)
        if version is None:
            raise ApiError(404, f"no method {method_id} version {rec.version}")
        return {
            "kind": rec.kind,
            "record_id": version.id,
            "label": f"method {version.name} version {version.version}",
            "state": version.state,
            "author": version.author,
            "version": version,
            "unit_id": None,
            "run_id": None,
            "run_pk": None,
        }
    run = await require_run(app, user, str(rec.id))
    return {
        "kind": rec.kind,
        "record_id": run.pk,
        "label": f"run {run.run_id}",
        "state": "stopped" if run.stopped is not None else "running",
        "author": None,
        "unit_id": run.engine_id,
        "run_id": run.run_id,
        "run_pk": run.pk,
    }


def _rules(
    user: ApiUser, meaning: str, target: dict[str, Any], existing: list[SignatureRow]
) -> None:
    """Raise the refusal of a signature the record's state or the signer may not have."""
    kind = target["kind"]
    if meaning not in MEANINGS[kind]:
        allowed = ", ".join(MEANINGS[kind])
        raise ApiError(422, f"a {kind} is signed as {allowed}, not {meaning}", "meaning")
    signed = {(s.meaning, s.user) for s in existing}
    if kind == "run":
        if target["state"] != "stopped":
            raise ApiError(409, f"{target['label']} is still running: sign it once it stopped")
        if meaning == "released" and any(m == "released" for m, _ in signed):
            raise ApiError(409, f"{target['label']} is already released")
        return
    author = target["author"]
    state = target["state"]
    if meaning == "authored":
        if user.name != author:
            raise ApiError(403, f"only its author {author} signs {target['label']} as authored")
        return
    if user.name == author:
        raise ApiError(
            403,
            f"{user.name} is the author of {target['label']} and may not sign it as {meaning} "
            "(separation of duties)",
        )
    if meaning == "reviewed" and state != "draft":
        raise ApiError(409, f"{target['label']} is {state}: only a draft is reviewed")
    if meaning == "approved":
        if state != "reviewed":
            raise ApiError(409, f"{target['label']} is {state}: it is approved once reviewed")
        if ("reviewed", user.name) in signed:
            raise ApiError(
                403, f"{user.name} reviewed {target['label']} and may not also approve it"
            )


async def _password_ok(app: web.Application, user: ApiUser, password: str) -> UserRow:
    """The signer's account when the password is right; failures count towards the login
    lockout, so signing cannot be used to guess passwords."""
    ctx = ctx_of(app)
    state = state_of(app)
    keys = [f"user {user.name.casefold()}"]
    now = state.throttle_clock()
    if state.throttle.retry_after(keys, now) > 0:
        raise ApiError(429, f"too many failed passwords for {user.name}: not signed; wait")
    state.throttle.failure(keys, now)
    row = await ctx.read(ctx.storage.user_by_name, user.name)
    if row is None or not await ctx.read(_password_matches, row, password):
        raise ApiError(403, "wrong password: not signed", "password")
    state.throttle.success(keys)
    return row


def _write(
    app: web.Application,
    user: ApiUser,
    full_name: str,
    body: SignRequest,
    target: dict[str, Any],
    now: float,
) -> SignatureRow:
    """On the writer thread: the record's content now, the audit entry, the signature row and
    the version's new state, so nothing can change the record between hashing and storing."""
    ctx = ctx_of(app)
    storage = ctx.storage
    parts = current_parts(ctx, target["kind"], target["record_id"])
    if parts is None:
        raise ApiError(404, f"{target['label']} no longer exists")
    sig_id = storage.signatures.insert(
        kind=target["kind"],
        record_id=target["record_id"],
        label=target["label"],
        meaning=body.meaning,
        user=user.name,
        full_name=full_name,
        time=now,
        parts=parts,
        comment=body.comment,
        audit_id=None,
    )
    row = storage.signatures.get(sig_id)
    assert row is not None
    entry = state_of(app).audit.append(
        time=now,
        user=user.name,
        action=ACTION,
        unit_id=target["unit_id"],
        run_id=target["run_id"],
        run_pk=target["run_pk"],
        new={**audit_fields(row), "label": target["label"], "result": "ok"},
    )
    storage.signatures.set_audit_id(sig_id, entry.id)
    if target["kind"] == "method_version" and body.meaning in ("reviewed", "approved"):
        with storage.engine.begin() as conn:
            storage.methods.set_state(conn, target["version"], body.meaning)
    signed = storage.signatures.get(sig_id)
    assert signed is not None
    return signed


async def sign(call: Call[SignRequest, None]) -> SignatureView:
    user = call.need_user()
    app = call.app
    body = call.body
    target: dict[str, Any] | None = None
    try:
        if user.role == "viewer":
            raise ApiError(403, f"a viewer does not sign; {user.name} is a viewer")
        target = await _target(app, user, body)
        row = await _password_ok(app, user, body.password)
        full_name = row.full_name.strip()
        if not full_name:
            raise ApiError(
                409,
                f"{user.name} has no printed name on record: an admin sets it with "
                f"setpoint-aggregator user full-name {user.name} 'First Last'",
            )
        ctx = ctx_of(app)
        existing = await ctx.read(
            ctx.storage.signatures.of_record, target["kind"], target["record_id"]
        )
        _rules(user, body.meaning, target, existing)
        now = state_of(app).clock()
        signed = await ctx.writer.call(_write, app, user, full_name, body, target, now)
    except ApiError as problem:
        await _refused(app, user, body, target, problem)
        raise
    return view(signed, (True, [], "valid: just signed"))


async def _refused(
    app: web.Application,
    user: ApiUser,
    body: SignRequest,
    target: dict[str, Any] | None,
    problem: ApiError,
) -> None:
    problem.audited = True
    rec = body.record
    await record(
        app,
        user.name,  # a refused signer is no contributor of the run
        ACTION,
        unit_id=None if target is None else target["unit_id"],
        run_id=None if target is None else target["run_id"],
        new={
            "record": {"kind": rec.kind, "id": rec.id, "version": rec.version},
            "meaning": body.meaning,
            "result": problem.error,
            "status": problem.status,
        },
    )


# --- reading and verifying ------------------------------------------------------------------------


async def verify(call: Call[None, None]) -> Verification:
    user = call.need_user()
    ctx = ctx_of(call.app)
    try:
        signature_id = int(call.path("signature_id"))
    except ValueError:
        raise ApiError(404, "no such signature") from None
    row = await ctx.read(ctx.storage.signatures.get, signature_id)
    if row is None:
        raise ApiError(404, f"no signature with id {signature_id}")
    if row.kind == "run":
        run = await ctx.read(_run_id_of, ctx, row.record_id)
        if run is not None:
            await require_run(call.app, user, run)

    def work() -> tuple[bool, list[str], str]:
        parts = current_parts(ctx, row.kind, row.record_id)
        return check(row, parts, ctx.storage.signatures.audit_entry(row.audit_id))

    verdict = await ctx.read(work)
    return Verification(
        id=row.id,
        valid=verdict[0],
        changed=verdict[1],
        reason=verdict[2],
        sha256=row.sha256,
        signature=view(row, verdict),
    )


def _run_id_of(ctx: AppContext, run_pk: int) -> str | None:
    with ctx.storage.engine.connect() as conn:
        value = conn.execute(sa.select(T_RUN.c.run_id).where(T_RUN.c.pk == run_pk)).scalar()
    return None if value is None else str(value)


async def run_signatures(call: Call[None, None]) -> list[SignatureView]:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    return await ctx.read(record_signatures, ctx, "run", run.pk)


def setup(app: web.Application, routes: ApiRoutes) -> None:
    routes.add_all(
        app,
        [
            (
                Operation(
                    "POST",
                    "/api/signatures",
                    "Sign a method version or a run; the password is checked at every signing",
                    "viewer",
                    body=SignRequest,
                    response=SignatureView,
                    status=201,
                    errors=(403, 404, 409, 422, 429),
                    tags=TAGS,
                    action=ACTION,
                    description="Meanings: a method_version is signed authored (by its author), "
                    "reviewed (from draft) or approved (from reviewed), never by its author; a "
                    "run is signed reviewed or released once stopped. A viewer never signs. "
                    "Every attempt is audited.",
                ),
                sign,
            ),
            (
                Operation(
                    "GET",
                    "/api/signatures/{signature_id}/verify",
                    "Recompute a signature's SHA-256: valid, or which part changed",
                    "viewer",
                    response=Verification,
                    errors=(403, 404),
                    tags=TAGS,
                ),
                verify,
            ),
            (
                Operation(
                    "GET",
                    "/api/runs/{run_id}/signatures",
                    "A run's signatures, each verified",
                    "viewer",
                    response=list[SignatureView],
                    errors=(403, 404),
                    tags=TAGS,
                ),
                run_signatures,
            ),
        ],
    )
