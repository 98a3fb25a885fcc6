"""Issue 16 items 1, 2 and 7: the method library and electronic signatures over real HTTP.

Every refusal of a signature is checked together with its audit entry; a signature whose record
(or whose own row) is changed directly in the database verifies as invalid, naming the part."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Api
from tests.api.regulated_helpers import add_signers, audit_entries, new_of, sign

TEXT = "Base: min\nBlock: Equilibrate\n    Inlet: VA01\nEnd block"


@pytest.fixture
def signers(api: Api, password_hash: str) -> Api:
    return add_signers(api, password_hash)


async def _create(api: Api, name: str = "Equilibrate", text: str = TEXT) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/methods", json={"name": name, "text": text})
    assert status == 201, body
    assert isinstance(body, dict)
    return body


async def test_versions_are_added_never_changed(signers: Api) -> None:
    api = signers
    created = await _create(api)
    assert [v["state"] for v in created["versions"]] == ["draft"]
    assert created["versions"][0]["author"] == api.names["operator"]
    status, v2 = await api.call(
        "PUT", f"/api/methods/{created['id']}", json={"text": TEXT + "\n", "expected_version": 1}
    )
    assert status == 201 and isinstance(v2, dict) and v2["version"] == 2, v2
    status, stale = await api.call(
        "PUT", f"/api/methods/{created['id']}", json={"text": "x", "expected_version": 1}
    )
    assert status == 409 and "version 2, not 1" in stale["error"]
    status, _ = await api.call("POST", "/api/methods", "viewer", json={"name": "V", "text": ""})
    assert status == 403
    status, dup = await api.call("POST", "/api/methods", json={"name": "Equilibrate", "text": ""})
    assert status == 409 and "already exists" in dup["error"]
    status, listed = await api.call("GET", "/api/methods", "viewer")
    assert status == 200 and isinstance(listed, list)
    assert [(m["name"], m["latest_version"], m["latest_state"]) for m in listed] == [
        ("Equilibrate", 2, "draft")
    ]
    status, detail = await api.call("GET", f"/api/methods/{created['id']}", "viewer")
    assert status == 200 and isinstance(detail, dict)
    assert [v["text"] for v in detail["versions"]] == [TEXT, TEXT + "\n"]
    status, _ = await api.call("GET", "/api/methods/999", "viewer")
    assert status == 404


async def test_every_refusal_is_refused_and_audited(signers: Api) -> None:
    api = signers
    method = await _create(api)
    mid = method["id"]
    cases = [
        ("admin", "reviewed", {"password": "wrong password!"}, 403, "wrong password"),
        ("viewer", "reviewed", {}, 403, "a viewer does not sign"),
        ("operator", "reviewed", {}, 403, "separation of duties"),
        ("operator", "approved", {}, 403, "separation of duties"),
        ("admin", "approved", {}, 409, "it is approved once reviewed"),
        ("admin", "authored", {}, 403, "only its author"),
        ("admin", "released", {}, 422, "not released"),
    ]
    for role, meaning, extra, status, reason in cases:
        got, body = await sign(api, role, "method_version", mid, meaning, version=1, **extra)
        assert got == status and reason in body["error"], (role, meaning, body)
    entries = audit_entries(api, "signature")
    assert len(entries) == len(cases)
    for entry, (role, meaning, _extra, status, reason) in zip(entries, cases, strict=True):
        assert entry.user == api.names[role]
        assert isinstance(entry.new, dict)
        assert entry.new["status"] == status and reason in str(entry.new["result"])
        assert entry.new["meaning"] == meaning
    # the reviewer may not also approve; an unnamed signer is told to get a printed name
    assert (await sign(api, "admin", "method_version", mid, "reviewed", version=1))[0] == 201
    got, body = await sign(api, "admin", "method_version", mid, "approved", version=1)
    assert got == 403 and "may not also approve" in body["error"]
    api.agg.ctx.storage.set_full_name(api.names["approver"], "")
    got, body = await sign(api, "approver", "method_version", mid, "approved", version=1)
    assert got == 409 and "no printed name" in body["error"]
    assert new_of(audit_entries(api, "signature")[-1])["status"] == 409
    status, detail = await api.call("GET", f"/api/methods/{mid}", "viewer")
    assert [v["state"] for v in detail["versions"]] == ["reviewed"]


async def test_signing_moves_the_state_and_verifies(signers: Api) -> None:
    api = signers
    mid = (await _create(api))["id"]
    status, authored = await sign(api, "operator", "method_version", mid, "authored", version=1)
    assert status == 201, authored
    await sign(api, "admin", "method_version", mid, "reviewed", version=1)
    status, approved = await sign(api, "approver", "method_version", mid, "approved", version=1)
    assert status == 201, approved
    assert isinstance(approved, dict)
    assert approved["full_name"] == "Petra Approver" and approved["meaning"] == "approved"
    assert approved["time_utc"].endswith("UTC") and len(approved["sha256"]) == 64
    status, detail = await api.call("GET", f"/api/methods/{mid}", "viewer")
    version = detail["versions"][0]
    assert version["state"] == "approved"
    assert [(s["meaning"], s["valid"]) for s in version["signatures"]] == [
        ("authored", True),
        ("reviewed", True),
        ("approved", True),
    ]
    entry = audit_entries(api, "signature")[-1]
    assert new_of(entry)["sha256"] == approved["sha256"]
    assert new_of(entry)["full_name"] == "Petra Approver"
    # approving version 2 retires version 1
    await api.call("PUT", f"/api/methods/{mid}", json={"text": TEXT + "\n", "expected_version": 1})
    await sign(api, "admin", "method_version", mid, "reviewed", version=2)
    await sign(api, "approver", "method_version", mid, "approved", version=2)
    status, detail = await api.call("GET", f"/api/methods/{mid}", "viewer")
    assert [v["state"] for v in detail["versions"]] == ["retired", "approved"]
    got, body = await sign(api, "admin", "method_version", mid, "reviewed", version=1)
    assert got == 409 and "is retired" in body["error"]

    status, check = await api.call("GET", f"/api/signatures/{approved['id']}/verify", "viewer")
    assert status == 200 and check["valid"] is True, check


async def test_a_changed_row_invalidates_the_signature(signers: Api) -> None:
    api = signers
    mid = (await _create(api))["id"]
    _, reviewed = await sign(api, "admin", "method_version", mid, "reviewed", version=1)
    assert isinstance(reviewed, dict)
    engine = api.agg.ctx.storage.engine
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE method_version SET text = :t WHERE method_id = :m"),
            {"t": TEXT.replace("VA01", "VA02"), "m": mid},
        )
    status, check = await api.call("GET", f"/api/signatures/{reviewed['id']}/verify", "viewer")
    assert status == 200 and isinstance(check, dict)
    assert check["valid"] is False and check["changed"] == ["text"], check
    assert "changed since it was signed: text" in check["reason"]
    status, detail = await api.call("GET", f"/api/methods/{mid}", "viewer")
    assert detail["versions"][0]["signatures"][0]["valid"] is False
    # restoring the text but editing the signature row itself is seen as well
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE method_version SET text = :t WHERE method_id = :m"),
            {"t": TEXT, "m": mid},
        )
        conn.execute(
            sa.text("UPDATE signature SET meaning = 'approved' WHERE id = :i"),
            {"i": reviewed["id"]},
        )
    _, check = await api.call("GET", f"/api/signatures/{reviewed['id']}/verify", "viewer")
    assert check["valid"] is False and check["changed"] == ["signature"]
    assert "meaning" in check["reason"]
    status, _ = await api.call("GET", "/api/signatures/424242/verify", "viewer")
    assert status == 404
