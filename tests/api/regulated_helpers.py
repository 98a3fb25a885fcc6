"""Shared by the regulated-records tests: users with printed names (the operator authors, the
admin reviews, a second operator approves), and short ways to call the library and sign."""

from __future__ import annotations

from typing import Any

from aggregator.api.service import API_STATE_KEY
from aggregator.audit import AuditRecord
from aggregator.security import new_token, token_hash
from tests.api.conftest import PASSWORD, Api

FULL_NAMES = {"viewer": "Vera Viewer", "operator": "Otto Operator", "admin": "Ada Admin"}


def add_signers(api: Api, password_hash: str) -> Api:
    storage = api.agg.ctx.storage
    for role, full in FULL_NAMES.items():
        storage.set_full_name(api.names[role], full)
    name = api.names["operator"].replace("operator", "approver")
    storage.add_user(name, "operator", password_hash, full_name="Petra Approver")
    user = storage.user_by_name(name)
    assert user is not None
    token = new_token()
    storage.create_session(user.id, token_hash(token), 3600.0)
    api.names["approver"] = name
    api.tokens["approver"] = token
    return api


async def sign(
    api: Api,
    role: str,
    kind: str,
    record_id: int | str,
    meaning: str,
    *,
    version: int | None = None,
    password: str = PASSWORD,
) -> tuple[int, Any]:
    record: dict[str, Any] = {"kind": kind, "id": record_id}
    if version is not None:
        record["version"] = version
    return await api.call(
        "POST",
        "/api/signatures",
        role,
        json={"record": record, "meaning": meaning, "password": password},
    )


async def approved_method(api: Api, text: str, name: str = "Equilibrate") -> dict[str, Any]:
    """A library method whose version 1 is reviewed (admin) and approved (approver)."""
    status, body = await api.call("POST", "/api/methods", json={"name": name, "text": text})
    assert status == 201, body
    assert isinstance(body, dict)
    for role, meaning in (("admin", "reviewed"), ("approver", "approved")):
        status, signed = await sign(api, role, "method_version", body["id"], meaning, version=1)
        assert status == 201, signed
    return body


def audit_entries(api: Api, action: str) -> list[AuditRecord]:
    """Oldest first."""
    records, _ = api.agg.app[API_STATE_KEY].audit.page(before=None, limit=1000)
    return [r for r in reversed(records) if r.action == action]


def new_of(record: AuditRecord) -> dict[str, Any]:
    assert isinstance(record.new, dict), record
    return record.new
