"""Approved-only units (UOD `require_approved_methods()`): what the aggregator refuses on them.

A Start (or Restart) needs the unit's method to be a library version that is approved now and
whose text is still the one loaded (the unit's text hashes the same). A method edit during a run
is refused: the run must carry on with what was approved. Each reason is one line, returned for
a 409 that the caller audits."""

from __future__ import annotations

from aiohttp import web

from aggregator.api.service import ctx_of, current_method, uod_of
from aggregator.live import LiveEngine
from aggregator.store.methods import text_sha256

PREFIX = "this unit runs approved methods only"


def requires_approval(app: web.Application, unit_id: str) -> bool:
    uod = uod_of(app, unit_id)
    return uod is not None and uod.require_approved_methods


async def start_problem(app: web.Application, unit_id: str) -> str | None:
    """Why the unit's current method may not start, or None."""
    if not requires_approval(app, unit_id):
        return None
    ctx = ctx_of(app)
    source = await ctx.read(ctx.storage.methods.unit_source, unit_id)
    if source is None:
        return (
            f"{PREFIX}: its method was not loaded from the method library "
            "(POST /api/units/{id}/method/load an approved version)"
        )
    named = f"{source.version.name} version {source.version.version}"
    if source.version.state != "approved":
        return f"{PREFIX}: {named} is {source.version.state}, not approved"
    current = await current_method(app, unit_id)
    if current is None or text_sha256(current.text) != source.version.sha256:
        return f"{PREFIX}: the method was edited after {named} was loaded; load it again"
    return None


def edit_problem(app: web.Application, live: LiveEngine) -> str | None:
    """Why a method edit is refused now, or None."""
    if not requires_approval(app, live.engine_id):
        return None
    state = str(live.control.get("state") or "Stopped")
    if live.run_id is not None or state != "Stopped":
        return f"{PREFIX}: the method cannot be changed during a run"
    return None
