"""The aggregator's OPC UA server against real asyncua clients over loopback.

A real aggregator (SQLite, real sockets) serves OPC UA on a free port; fake engines register
and send tags over /engine/ws; clients log in as Setpoint users over Basic256Sha256 with a
client certificate made here."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto import security_policies
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509

import protocol as p
from aggregator.app import create_app
from aggregator.context import Settings
from aggregator.opcua import OpcUaConfig
from aggregator.opcua.certs import (
    CERT_DIR,
    CERT_FILE,
    KEY_FILE,
    ensure_server_certificate,
    write_self_signed,
)
from aggregator.opcua.server import OPCUA_KEY
from aggregator.opcua.space import NAMESPACE_URI, browse_name
from aggregator.opcua.users import CheckRation
from aggregator.opcua.values import UNECE_CODES, engineering_units
from aggregator.security import new_token, token_hash
from tests.aggregator.conftest import PASSWORD
from tests.aggregator.helpers import UOD, Aggregator, until
from tests.api.fake_engine import FakeEngine, wait_online

CLIENT_URI = "urn:setpoint-tests:opcua-client"


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: what is under test is OPC UA, not storage."""
    path = tmp_path / "setpoint.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> ClientCert:
    """A client application certificate, as a SCADA would present (self-signed)."""
    directory = tmp_path_factory.mktemp("opcua-client")
    cert_path = directory / "client-cert.der"
    key_path = directory / "client-key.pem"
    write_self_signed(
        cert_path, key_path, common_name="setpoint test client", app_uri=CLIENT_URI, hosts=[]
    )
    return ClientCert(cert_path, key_path)


@dataclass
class Site:
    agg: Aggregator
    data_dir: Path
    client_cert: ClientCert
    names: dict[str, str] = field(default_factory=dict)
    engines: list[FakeEngine] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.agg.app[OPCUA_KEY].endpoint_url

    async def client(
        self,
        role: str | None = "viewer",
        *,
        password: str = PASSWORD,
        mode: ua.MessageSecurityMode = ua.MessageSecurityMode.SignAndEncrypt,
    ) -> Client:
        client = Client(self.url, timeout=10)
        client.application_uri = CLIENT_URI
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            str(self.client_cert.cert),
            str(self.client_cert.key),
            mode=mode,
        )
        if role is not None:
            client.set_user(self.names[role])
            client.set_password(password)
        await client.connect()
        return client

    async def engine(self, uod: p.UodDescription = UOD) -> FakeEngine:
        self.agg.token = new_token()  # a token per engine: a token may be bound to its engine
        self.agg.ctx.storage.create_engine_token(
            "test-" + uuid.uuid4().hex[:8], token_hash(self.agg.token)
        )
        engine = FakeEngine(self.agg, uod=uod)
        await engine.start()
        await wait_online(self.agg, engine.engine_id)
        self.engines.append(engine)
        return engine


@pytest.fixture
async def site(
    db_url: str, tmp_path: Path, password_hash: str, client_cert: ClientCert
) -> AsyncIterator[Site]:
    settings = Settings(heartbeat_interval=5.0, resend_timeout=1.0, batch_window=0.005)
    data_dir = tmp_path / "data"
    app = create_app(db_url, settings, opcua=OpcUaConfig(port=0, data_dir=data_dir))
    agg = Aggregator(app)
    await agg.start()
    storage = agg.ctx.storage
    result = Site(agg, data_dir, client_cert)
    suffix = uuid.uuid4().hex[:6]
    for role in ("viewer", "operator", "admin"):
        result.names[role] = f"{role}-{suffix}"
        storage.add_user(result.names[role], role, password_hash)
    try:
        yield result
    finally:
        for engine in result.engines:
            await engine.aclose()
        await agg.stop()


async def setpoint_folder(client: Client) -> tuple[Node, int]:
    ns = await client.get_namespace_index(NAMESPACE_URI)
    folder = await client.nodes.objects.get_child(f"{ns}:Setpoint")
    return folder, ns


async def unit_names(client: Client) -> set[str]:
    folder, _ = await setpoint_folder(client)
    return {(await child.read_browse_name()).Name for child in await folder.get_children()}


class Changes:
    """An asyncua subscription handler that keeps every data change."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ua.DataValue]] = []

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.seen.append((node.nodeid.to_string(), data.monitored_item.Value))

    def values(self, node: Node) -> list[Any]:
        key = node.nodeid.to_string()
        return [variant_value(dv) for nid, dv in self.seen if nid == key]


def variant_value(dv: ua.DataValue) -> Any:
    assert dv.Value is not None
    return dv.Value.Value


async def test_a_viewer_browses_reads_and_subscribes(site: Site) -> None:
    client = await site.client("viewer")
    try:
        assert await unit_names(client) == set()
        engine = await site.engine()  # registers after the client connected
        await until(lambda: engine.engine_id in site.agg.ctx.live.engines, what="registered")
        t0 = time.time()
        await engine.control_state(p.SystemState.RUNNING, run_id="run-1", block="Equilibrate")
        await engine.run_started("run-1", t0)
        await engine.tags("run-1", t0, FT01=1.5, PT01=2, Inlet="VA02")

        folder, ns = await setpoint_folder(client)
        names: set[str] = set()

        async def listed() -> bool:
            names.update(await unit_names(client))
            return browse_name(engine.engine_id) in names

        await until_async(listed, what="the unit under Objects/Setpoint")
        unit = await folder.get_child(f"{ns}:{browse_name(engine.engine_id)}")
        assert (await unit.read_display_name()).Text == engine.engine_id
        tags = await unit.get_child(f"{ns}:Tags")
        children = {(await c.read_browse_name()).Name for c in await tags.get_children()}
        assert children == {"FT01", "PT01", "Inlet"}
        ft01 = await tags.get_child(f"{ns}:FT01")
        assert ft01.nodeid == ua.NodeId(ua.String(f"{engine.engine_id}/Tags/FT01"), ua.Int16(ns))

        async def value_is(node: Node, expected: Any) -> bool:
            return bool(variant_value(await node.read_data_value()) == expected)

        await until_async(lambda: value_is(ft01, 1.5), what="FT01 = 1.5")
        dv = await ft01.read_data_value()
        assert dv.StatusCode is not None and dv.StatusCode.is_good()
        assert dv.SourceTimestamp is not None
        assert abs(dv.SourceTimestamp.timestamp() - t0) < 1e-3
        assert await ft01.read_data_type() == ua.NodeId(ua.Int32(ObjectIds.Double))
        pt01 = await tags.get_child(f"{ns}:PT01")
        assert (await pt01.read_data_value()).Value == ua.Variant(2.0, ua.VariantType.Double)
        inlet = await tags.get_child(f"{ns}:Inlet")
        assert (await inlet.read_data_value()).Value == ua.Variant("VA02", ua.VariantType.String)
        eu = await (await ft01.get_child("0:EngineeringUnits")).read_value()
        assert eu.DisplayName.Text == "L/h"
        assert eu.UnitId == int.from_bytes(UNECE_CODES["L/h"].encode(), "big")
        fields = {
            name: await (await unit.get_child(f"{ns}:{name}")).read_value()
            for name in ("State", "RunId", "Block", "Online")
        }
        assert fields == {
            "State": "Running",
            "RunId": "run-1",
            "Block": "Equilibrate",
            "Online": True,
        }

        changes = Changes()
        subscription = await client.create_subscription(50, changes)
        await subscription.subscribe_data_change([ft01])
        await until(lambda: changes.values(ft01) == [1.5], what="the initial notification")
        t1 = t0 + 0.5
        await engine.tags("run-1", t1, FT01=2.5)
        await until(lambda: changes.values(ft01)[-1:] == [2.5], what="a data change to 2.5")
        last = changes.seen[-1][1]
        assert last.StatusCode is not None and last.StatusCode.is_good()
        assert last.SourceTimestamp is not None
        assert abs(last.SourceTimestamp.timestamp() - t1) < 1e-3

        await engine.close()  # the link drops: every value of the unit is stale
        await until(
            lambda: changes.values(ft01)[-1:] == [2.5] and len(changes.values(ft01)) >= 3,
            what="a stale notification",
        )
        stale = changes.seen[-1][1]
        assert stale.StatusCode is not None
        assert stale.StatusCode.value == StatusCodes.UncertainLastUsableValue
        online = await unit.get_child(f"{ns}:Online")
        await until_async(lambda: value_is(online, False), what="Online = False")
    finally:
        await client.disconnect()


async def until_async(check: Any, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def audit_logins(site: Site) -> list[tuple[str, str, dict[str, Any]]]:
    from aggregator.api.service import state_of

    trail = state_of(site.agg.app).audit
    return [
        (r.user, r.action, r.new)
        for r in trail.iter_all()
        if r.action.startswith("login") and isinstance(r.new, dict) and r.new.get("via") == "opcua"
    ]


async def test_anonymous_and_wrong_passwords_are_refused(site: Site) -> None:
    with pytest.raises(UaStatusCodeError) as anonymous:
        await site.client(None)
    assert anonymous.value.code == StatusCodes.BadIdentityTokenRejected
    with pytest.raises(UaStatusCodeError) as wrong:
        await site.client("viewer", password="not the password")
    assert wrong.value.code == StatusCodes.BadUserAccessDenied
    viewer = site.names["viewer"]
    await until(
        lambda: (
            (
                viewer,
                "login",
                {"ok": False, "result": "wrong user name or password", "via": "opcua"},
            )
            in audit_logins(site)
        ),
        what="the refused login in the audit trail",
    )
    client = await site.client("viewer")
    await client.disconnect()
    await until(
        lambda: (
            (viewer, "login", {"ok": True, "result": "ok", "via": "opcua"}) in audit_logins(site)
        ),
        what="the login in the audit trail",
    )


async def test_five_wrong_passwords_lock_the_name_out(site: Site) -> None:
    for _ in range(5):
        with pytest.raises(UaStatusCodeError):
            await site.client("operator", password="guess")
    with pytest.raises(UaStatusCodeError) as locked:
        await site.client("operator")  # the right password, but the name is locked
    assert locked.value.code == StatusCodes.BadUserAccessDenied
    operator = site.names["operator"]
    await until(
        lambda: any(a == "login lockout" and u == operator for u, a, _ in audit_logins(site)),
        what="the lockout in the audit trail",
    )


async def test_a_unit_the_user_may_not_see_is_hidden_and_refused(site: Site) -> None:
    restricted = UOD.model_copy(update={"name": "Restricted", "required_roles": ["operator"]})
    hidden = await site.engine(restricted)
    shown = await site.engine()
    await hidden.tags(None, time.time(), FT01=7.0)
    viewer = await site.client("viewer")
    operator = await site.client("operator", mode=ua.MessageSecurityMode.Sign)
    try:
        _, ns = await setpoint_folder(viewer)
        await until_async(
            lambda: _listed(operator, hidden.engine_id), what="the unit for the operator"
        )
        assert await unit_names(viewer) == {browse_name(shown.engine_id)}
        ft01 = ua.NodeId(ua.String(f"{hidden.engine_id}/Tags/FT01"), ua.Int16(ns))
        assert (await operator.get_node(ft01).read_value()) == 7.0
        node = viewer.get_node(ft01)
        with pytest.raises(UaStatusCodeError) as read:
            await node.read_value()
        assert read.value.code == StatusCodes.BadUserAccessDenied
        unit_node = viewer.get_node(ua.NodeId(ua.String(hidden.engine_id), ua.Int16(ns)))
        assert await unit_node.get_children() == []
        browse = ua.BrowseParameters(
            NodesToBrowse=[ua.BrowseDescription(NodeId=unit_node.nodeid, ResultMask=63)]
        )
        [browsed] = await viewer.uaclient.browse(browse)
        assert browsed.StatusCode.value == StatusCodes.BadUserAccessDenied
        subscription = await viewer.create_subscription(50, Changes())
        with pytest.raises(UaStatusCodeError) as subscribe:
            await subscription.subscribe_data_change(node)
        assert subscribe.value.code == StatusCodes.BadUserAccessDenied
    finally:
        await viewer.disconnect()
        await operator.disconnect()


async def _listed(client: Client, unit_id: str) -> bool:
    return browse_name(unit_id) in await unit_names(client)


async def test_writes_are_refused(site: Site) -> None:
    engine = await site.engine()
    await engine.tags(None, time.time(), FT01=1.0)
    client = await site.client("admin", mode=ua.MessageSecurityMode.Sign)
    try:
        _, ns = await setpoint_folder(client)
        node = client.get_node(ua.NodeId(ua.String(f"{engine.engine_id}/Tags/FT01"), ua.Int16(ns)))
        await until_async(lambda: _value_is(node, 1.0), what="FT01 = 1.0")
        with pytest.raises(UaStatusCodeError) as write:
            await node.write_value(ua.DataValue(ua.Variant(5.0, ua.VariantType.Double)))
        assert write.value.code == StatusCodes.BadUserAccessDenied
        assert await node.read_value() == 1.0
    finally:
        await client.disconnect()


async def _value_is(node: Node, expected: Any) -> bool:
    return bool(await node.read_value() == expected)


def test_the_server_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    uri = "urn:test:setpoint:aggregator"
    first = ensure_server_certificate(tmp_path, "127.0.0.1", uri)
    assert first.created
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    cert = x509.load_der_x509_certificate(first.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uri in names.get_values_for_type(x509.UniformResourceIdentifier)
    again = ensure_server_certificate(tmp_path, "127.0.0.1", uri)
    assert not again.created
    assert again.cert_path.read_bytes() == first.cert_path.read_bytes()


def test_certificate_problems_are_one_line(tmp_path: Path) -> None:
    from aggregator.opcua.certs import CertificateError

    directory = tmp_path / CERT_DIR
    directory.mkdir()
    (directory / CERT_FILE).write_bytes(b"x")
    with pytest.raises(CertificateError, match="exists without its pair"):
        ensure_server_certificate(tmp_path, "127.0.0.1", "urn:x")
    (directory / KEY_FILE).write_bytes(b"x")
    os.chmod(directory / KEY_FILE, 0o644)
    with pytest.raises(CertificateError, match="readable by other users; chmod 600 it"):
        ensure_server_certificate(tmp_path, "127.0.0.1", "urn:x")


def test_password_checks_are_rationed() -> None:
    ration = CheckRation(rate=2.0, burst=3.0)
    assert [ration.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert ration.take(0.4) is False
    assert ration.take(0.5) is True  # 0.5 s at 2/s earned one check


def test_engineering_units_without_a_code_keep_their_text() -> None:
    eu = engineering_units("mAU")
    assert (eu.UnitId, eu.DisplayName.Text) == (-1, "mAU")
    assert engineering_units("bar").UnitId == int.from_bytes(b"BAR", "big")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_names_a_busy_opcua_port_in_one_line(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from aggregator.cli import main

    code = main(
        ["serve", "--port", "0", "--opcua-port", str(busy_port), "--data-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        f"setpoint-aggregator: error: OPC UA port {busy_port} on 127.0.0.1 is already in use "
        "(another OPC UA server?); choose another with --opcua-port"
    )


def test_serve_refuses_an_opcua_port_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aggregator.cli import main

    assert main(["serve", "--opcua-port", "70000", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "setpoint-aggregator: error: --opcua-port 70000 is out of range 0..65535"
    )
