"""Engine identity (issue 13 item 1): a token registers one engine id only, and can be revoked.

Over real sockets against a real aggregator: an impostor with another engine's token (or a fresh
token claiming a bound engine id) is refused with a ProtocolError naming rule 1, the real engine
stays connected, nothing of the impostor is stored, and the attempt is audited. Revoking through
the API or with the CLI from another process ends the engine's link within a second.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.audit import AuditTrail
from aggregator.security import new_token, token_hash
from aggregator.store.tables import T_ENGINE, T_SEQ, T_TAG
from tests.aggregator.helpers import RawEngine, tags, until
from tests.aggregator.test_cli import EXE, serve
from tests.api.conftest import Api, api, db_url, password_hash, template_db  # noqa: F401

REVOKE_WITHIN = 1.0


def _new_token(server: Api, engine_id: str | None = None) -> tuple[str, str]:
    name = "t-" + uuid.uuid4().hex[:8]
    token = new_token()
    server.agg.ctx.storage.create_engine_token(name, token_hash(token), engine_id)
    return name, token


async def _refused(engine: RawEngine) -> p.ProtocolErrorMessage:
    error = await engine.wait_for(p.ProtocolErrorMessage)
    await until(engine.closed.is_set, 5.0, "the refused link to close")
    assert not engine.of_type(p.Registered)
    return error  # type: ignore[no-any-return]


def _bound(server: Api, name: str) -> object:
    """The engine id token `name` is bound to (rows are dicts or typed rows)."""
    for row in server.agg.ctx.storage.list_engine_tokens():
        fields: Any = row
        if isinstance(row, dict):
            fields = SimpleNamespace(**row)
        if fields.name == name:
            return fields.engine_id
    raise AssertionError(f"no token {name}")


def _stored_anything(server: Api, engine_id: str) -> bool:
    with server.agg.ctx.storage.engine.connect() as conn:
        return any(
            conn.execute(sa.select(table).where(column == engine_id)).first() is not None
            for table, column in (
                (T_ENGINE, T_ENGINE.c.id),
                (T_SEQ, T_SEQ.c.engine_id),
                (T_TAG, T_TAG.c.engine_id),
            )
        )


def _audit(server: Api, action: str) -> list[dict[str, object]]:
    trail = AuditTrail(server.agg.ctx.storage.engine)
    return [
        {"user": r.user, "unit_id": r.unit_id, "new": r.new}
        for r in trail.iter_all()
        if r.action == action
    ]


async def _still_served(server: Api, engine: RawEngine, seq: int) -> None:
    """The real engine's link is up and its frames are stored and acknowledged."""
    assert not engine.closed.is_set()
    assert server.agg.ctx.connections.get(engine.engine_id) is not None
    await engine.send(tags(seq, time.time(), None, sample=False))
    await engine.wait_ack(seq)


async def test_a_token_bound_at_creation_registers_only_its_engine(api: Api) -> None:  # noqa: F811
    real_id = f"pc-{uuid.uuid4().hex[:6]}/Chromatography"
    name, token = _new_token(api, real_id)
    real = RawEngine(api.agg, real_id)
    impostor = RawEngine(api.agg, f"pc-{uuid.uuid4().hex[:6]}/Chromatography")
    try:
        await real.connect(token)
        await real.register()
        await impostor.connect(token)
        await impostor.send(p.RegisterEngine.model_validate(_register_dict(impostor.engine_id)))
        error = await _refused(impostor)
        assert error.rule == 1 and error.fatal
        assert f"bound to engine {real_id!r}" in error.message
        assert impostor.engine_id in error.message
        await _still_served(api, real, 1)
        assert not _stored_anything(api, impostor.engine_id)
        assert impostor.engine_id not in api.agg.ctx.live.engines
        [entry] = _audit(api, "engine register")
        assert entry["user"] == f"engine token {name}"
        assert entry["unit_id"] == impostor.engine_id
        new = entry["new"]
        assert isinstance(new, dict)
        assert new["ok"] is False and new["rule"] == 1 and new["bound_to"] == real_id
    finally:
        await real.aclose()
        await impostor.aclose()


def _register_dict(engine_id: str) -> dict[str, object]:
    from tests.aggregator.helpers import register_frame

    return register_frame(engine_id).model_dump()


async def test_an_unbound_token_binds_to_the_first_engine_id(api: Api) -> None:  # noqa: F811
    name, token = _new_token(api)
    first = RawEngine(api.agg)
    second = RawEngine(api.agg)
    try:
        await first.connect(token)
        await first.register()
        assert _bound(api, name) == first.engine_id
        await second.connect(token)
        await second.send(p.RegisterEngine.model_validate(_register_dict(second.engine_id)))
        error = await _refused(second)
        assert error.rule == 1 and "bound to engine" in error.message
        await _still_served(api, first, 1)
        assert not _stored_anything(api, second.engine_id)
        # the same engine reconnecting with its token is welcome (a takeover of its own link)
        again = RawEngine(api.agg, first.engine_id)
        await again.connect(token)
        await again.register()
        await again.aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_fresh_token_cannot_claim_a_bound_engine(api: Api) -> None:  # noqa: F811
    real = RawEngine(api.agg)
    _, real_token = _new_token(api)
    _, other_token = _new_token(api)
    impostor = RawEngine(api.agg, real.engine_id)
    try:
        await real.connect(real_token)
        await real.register()
        await impostor.connect(other_token)
        await impostor.send(p.RegisterEngine.model_validate(_register_dict(real.engine_id)))
        error = await _refused(impostor)
        assert error.rule == 1 and "--engine-id" in error.message
        await _still_served(api, real, 1)
        assert len(_audit(api, "engine register")) == 1
        # a new token made for this engine (rotation) may take over
        _, rotated = _new_token(api, real.engine_id)
        successor = RawEngine(api.agg, real.engine_id)
        await successor.connect(rotated)
        await successor.register()
        await until(real.closed.is_set, 5.0, "the replaced link to close")
        await successor.aclose()
    finally:
        await real.aclose()
        await impostor.aclose()


async def test_admins_list_and_revoke_tokens_over_http(api: Api) -> None:  # noqa: F811
    engine = RawEngine(api.agg)
    name, token = _new_token(api)
    try:
        await engine.connect(token)
        await engine.register()
        status, listed = await api.call("GET", "/api/engine-tokens", "admin")
        assert status == 200 and isinstance(listed, list)
        mine = next(t for t in listed if t["name"] == name)
        assert mine["engine_id"] == engine.engine_id and mine["revoked"] is False
        assert (await api.call("GET", "/api/engine-tokens", "operator"))[0] == 403
        assert (await api.call("DELETE", f"/api/engine-tokens/{name}", "operator"))[0] == 403
        assert (await api.call("DELETE", "/api/engine-tokens/nobody", "admin"))[0] == 404
        started = time.monotonic()
        status, _ = await api.call("DELETE", f"/api/engine-tokens/{name}", "admin")
        assert status == 204
        await until(engine.closed.is_set, REVOKE_WITHIN, "the revoked engine's link to close")
        assert time.monotonic() - started < REVOKE_WITHIN
        error = engine.of_type(p.ProtocolErrorMessage)[-1]
        assert error.rule == 1 and "revoked" in error.message
        status, listed = await api.call("GET", "/api/engine-tokens", "admin")
        assert isinstance(listed, list)
        mine = next(t for t in listed if t["name"] == name)
        assert mine["revoked"] is True and mine["revoked_at"] is not None
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    f"{api.url}/engine/ws", headers={"Authorization": f"Bearer {token}"}
                )
        assert refused.value.status == 401
        [entry] = [
            e
            for e in _audit(api, "engine token revoke")
            if isinstance(e["new"], dict) and e["new"].get("revoked") is True
        ]
        assert entry["unit_id"] == engine.engine_id
    finally:
        await engine.aclose()


async def test_an_engine_id_given_over_http_binds_the_token(api: Api) -> None:  # noqa: F811
    engine_id = f"pc-{uuid.uuid4().hex[:6]}/Chromatography"
    status, created = await api.call(
        "POST", "/api/engine-tokens", "admin", json={"name": "pc-7", "engine_id": engine_id}
    )
    assert status == 201 and isinstance(created, dict)
    assert _bound(api, "pc-7") == engine_id
    other = RawEngine(api.agg)
    try:
        await other.connect(created["token"])
        await other.send(p.RegisterEngine.model_validate(_register_dict(other.engine_id)))
        assert (await _refused(other)).rule == 1
    finally:
        await other.aclose()


def _cli(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, "engine-token", *args, "--database", url, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_cli_revoke_ends_the_link_of_a_running_serve(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'setpoint.sqlite3'}"
    data_dir = tmp_path / "data"
    engine_id = f"pc-{uuid.uuid4().hex[:6]}/Chromatography"
    created = _cli("create", "lab-pc", "--engine-id", engine_id, url=url, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert f"for engine {engine_id!r}" in created.stderr
    server = serve(url, token, data_dir=data_dir)
    engine = RawEngine(server, engine_id)
    try:
        await engine.connect()
        await engine.register()
        listing = _cli("list", url=url, data_dir=data_dir)
        assert listing.returncode == 0
        [row] = [line for line in listing.stdout.splitlines() if line.startswith("lab-pc")]
        assert engine_id in row and row.endswith("valid")
        revoked = _cli("revoke", "lab-pc", url=url, data_dir=data_dir)
        done = time.monotonic()
        assert revoked.returncode == 0, revoked.stderr
        await until(engine.closed.is_set, REVOKE_WITHIN, "the revoked engine's link to close")
        assert time.monotonic() - done < REVOKE_WITHIN
        assert any(
            e.rule == 1 and "revoked" in e.message for e in engine.of_type(p.ProtocolErrorMessage)
        )
        listing = _cli("list", url=url, data_dir=data_dir)
        assert "revoked 20" in listing.stdout
        again = _cli("revoke", "lab-pc", url=url, data_dir=data_dir)
        assert again.returncode == 0 and "already revoked" in again.stdout
        verify = subprocess.run(
            [*EXE, "audit", "verify", "--database", url, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stderr  # the CLI's entry moved the anchored head
    finally:
        await engine.aclose()
        server.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["revoke", "nobody"],
            "no engine token named 'nobody' (see `setpoint-aggregator engine-token list`)",
        ),
        (["create", "x", "--engine-id", " "], "--engine-id must be 1 to 256 characters"),
        (["create", "x", "--engine-id", "e" * 257], "--engine-id must be 1 to 256 characters"),
    ],
)
def test_token_mistakes_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = _cli(*args, url=f"sqlite:///{tmp_path / 'db.sqlite3'}", data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"setpoint-aggregator: error: {message}"]
