"""One session with an OPC UA server through asyncua: connect and log in, learn each node, subscribe,
write, read back. The driver (engine/hw/opcua.py) owns the recovery; this module only says what
happened: a `LinkError` (the link failed, try again later), a `ConfigError` (the server refuses
what the UOD asks for: wrong node id, login or security; retrying will not help), or a result.

asyncua's own reconnect supervisor stays off: reconnects are the recovery machine's decision.
Imported by the driver only when it starts, so an engine without OPC UA never loads asyncua.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors._base import UaError, UaStatusCodeError
from asyncua.ua.uaprotocol_auto import (
    BrowsePath,
    MessageSecurityMode,
    ReadParameters,
    ReadValueId,
    TimestampsToReturn,
    WriteParameters,
    WriteValue,
)
from asyncua.ua.uatypes import (
    DataValue,
    Double,
    NodeId,
    RelativePath,
    StatusCode,
    UInt32,
    Variant,
    VariantType,
)
from cryptography import x509

from engine.hw.opcua_config import LOCALIZED_TEXT, TYPE_NAMES, OpcUaClient, OpcUaNode, encode

_ENUMERATION = 29  # ns=0;i=29, the base of every enumeration data type: values are Int32
_CURRENT_WRITE = 0x02
_INT32 = 6
# Service results that mean the session or channel is gone, not that the server refused a value.
_LINK_CODES = frozenset(
    {
        "BadSessionIdInvalid",
        "BadSessionClosed",
        "BadSessionNotActivated",
        "BadSecureChannelIdInvalid",
        "BadSecureChannelClosed",
        "BadConnectionClosed",
        "BadServerHalted",
        "BadShutdown",
        "BadTimeout",
        "BadCommunicationError",
        "BadTooManySessions",
        "BadServerNotConnected",
    }
)
_LINK_FAILURES = (OSError, TimeoutError, ConnectionError, EOFError)

OnValue = Callable[[str, object, int], None]
OnLost = Callable[[str], None]


class LinkError(Exception):
    """The link failed or could not be made; the recovery machine decides what comes next."""


class ConfigError(LinkError):
    """The server refuses what the UOD declares (a node, a login, a security mode)."""


@dataclass(frozen=True)
class NodeInfo:
    tag: str
    node_id: Any  # NodeId
    variant_type: int | None  # None: a data type no tag can hold
    writable: bool
    unit: str | None


def quiet_library() -> None:
    """asyncua logs each refused connect and closed session at warning and up; the engine reports
    connection problems itself, once per change. Left alone if someone configured the logger."""
    library = logging.getLogger("asyncua")
    if library.level == logging.NOTSET:
        library.setLevel(logging.CRITICAL + 1)


def status_name(code: int) -> str:
    return StatusCode(UInt32(code)).name


def failure(exc: BaseException) -> str:
    if isinstance(exc, UaStatusCodeError):
        return status_name(exc.code)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class OpcUaLink:
    """One connected session; a new one is made for every (re)connect."""

    def __init__(
        self,
        connection: OpcUaClient,
        nodes: Mapping[str, OpcUaNode],
        sampling: float,
        on_value: OnValue,
        on_lost: OnLost,
    ) -> None:
        self.connection = connection
        self.nodes = nodes
        self.sampling = sampling
        self.info: dict[str, NodeInfo] = {}
        self.lost: str | None = None
        self._on_value = on_value
        self._on_lost = on_lost
        self._client: Client | None = None
        self._subscription: Subscription | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._tag_of: dict[Any, str] = {}
        self.revised_sampling: float | None = None

    # ---- connect --------------------------------------------------------------------------

    async def open(self, want_units: bool) -> None:
        """Connects, logs in and reads each node's data type, access and (if `want_units`)
        EngineeringUnits. Raises LinkError or ConfigError; `close()` is always safe after."""
        c = self.connection
        _check_files(c)
        client = Client(c.url, timeout=c.timeout, watchdog_intervall=c.keepalive)
        client.name = client.description = "Setpoint engine"
        client.session_timeout = 60_000  # ms: a session we lost track of ends within a minute
        client.connection_lost_callback = self._lost
        self._client = client
        try:
            await asyncio.wait_for(self._login(client), 4 * c.timeout)
            self.info = await asyncio.wait_for(self._learn(client, want_units), 4 * c.timeout)
        except LinkError:
            raise
        except UaStatusCodeError as exc:
            raise _classified(exc, c) from None
        except _LINK_FAILURES as exc:
            raise LinkError(f"cannot connect: {failure(exc)}") from None
        except UaError as exc:  # e.g. no endpoint with the asked security
            raise ConfigError(f"cannot connect: {exc}") from None

    async def _login(self, client: Client) -> None:
        c = self.connection
        if c.user:
            client.set_user(c.user)
            client.set_password(c.password or "")
        if c.security != "None":
            assert c.certificate and c.private_key
            client.application_uri = (
                c.application_uri or _uri_of(c.certificate) or "urn:setpoint:engine"
            )
            policy = getattr(security_policies, f"SecurityPolicy{c.policy}")
            mode = getattr(MessageSecurityMode, c.security)
            key_password = c.private_key_password
            server_cert = c.server_certificate
            await client.set_security(
                policy, c.certificate, c.private_key, key_password, server_cert, mode
            )
        elif c.application_uri:
            client.application_uri = c.application_uri
        if c.user_certificate and c.user_private_key:
            await client.load_client_certificate(c.user_certificate)
            await client.load_private_key(Path(c.user_private_key))
        await client.connect()

    async def _learn(self, client: Client, want_units: bool) -> dict[str, NodeInfo]:
        ids: dict[str, Any] = {}
        bad: list[str] = []
        for tag, node in self.nodes.items():
            try:
                ids[tag] = NodeId.from_string(node.node)
            except (UaError, ValueError):
                bad.append(f"tag {tag!r}: {node.node!r} is not a node id (e.g. ns=2;s=FT01)")
        if bad:
            raise ConfigError("; ".join(bad))
        tags = list(ids)
        attrs = (
            AttributeIds.DataType,
            AttributeIds.AccessLevel,
            AttributeIds.UserAccessLevel,
        )
        values = await _read(client, [(ids[t], a) for t in tags for a in attrs])
        info: dict[str, NodeInfo] = {}
        for i, tag in enumerate(tags):
            data_type, access, user_access = values[3 * i : 3 * i + 3]
            status = data_type.StatusCode.value if data_type.StatusCode else 0
            if status & 0x80000000:
                bad.append(f"tag {tag!r}: node {self.nodes[tag].node}: {status_name(status)}")
                continue
            variant = await _variant_type(client, ids[tag], data_type.Value.Value)
            writable = all(
                isinstance(v.Value.Value, int) and v.Value.Value & _CURRENT_WRITE
                for v in (access, user_access)
                if v.Value is not None
            )
            info[tag] = NodeInfo(tag, ids[tag], variant, bool(writable), None)
        if bad:
            raise ConfigError("; ".join(bad))
        if want_units:
            units = await _units(client, [info[t].node_id for t in tags])
            for n, (tag, known) in enumerate(list(info.items())):
                info[tag] = NodeInfo(
                    tag, known.node_id, known.variant_type, known.writable, units[n]
                )
        return info

    async def subscribe(self) -> None:
        """Monitors every node: the server sends each value once, then each change, sampled at
        `sampling` seconds and published as often."""
        client = self._require()
        ms = self.sampling * 1000.0
        try:
            sub = await client.create_subscription(ms, None, queue_maxsize=100_000)
            self._subscription = sub
            sub.__aiter__()  # the queue exists before the first notification can arrive
            items = [client.get_node(i.node_id) for i in self.info.values()]
            results = await sub.subscribe_data_change(
                items, sampling_interval=Double(ms), queuesize=1
            )
        except UaStatusCodeError as exc:
            raise LinkError(f"cannot subscribe: {status_name(exc.code)}") from None
        except _LINK_FAILURES as exc:
            raise LinkError(f"cannot subscribe: {failure(exc)}") from None
        bad = [
            f"tag {tag!r}: node {self.nodes[tag].node} cannot be monitored: {status_name(r.value)}"
            for tag, r in zip(self.info, results, strict=True)
            if isinstance(r, StatusCode)
        ]
        if bad:
            raise ConfigError("; ".join(bad))
        self._tag_of = {i.node_id: tag for tag, i in self.info.items()}
        self._consumer = asyncio.create_task(self._consume(sub), name="opcua notifications")

    async def _consume(self, sub: Subscription) -> None:
        on_value, tag_of = self._on_value, self._tag_of
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                tag = tag_of.get(event.node.nodeid)
                if tag is None:
                    continue
                dv = event.data.monitored_item.Value
                status = dv.StatusCode.value if dv is not None and dv.StatusCode else 0
                on_value(tag, event.value, status)
            elif isinstance(event, StatusChangeEvent):
                code = event.notification.Status.value
                if code & 0x80000000:
                    self._lost_now(f"the server ended the subscription: {status_name(code)}")

    # ---- write and read back --------------------------------------------------------------

    async def write(self, tag: str, value: object) -> str | None:
        """None when the server accepted `value`, else its refusal. Raises LinkError."""
        node = self.info[tag]
        if node.variant_type is None:
            return f"node {self.nodes[tag].node} has a data type a tag cannot write"
        try:
            encoded = encode(node.variant_type, value)  # type: ignore[arg-type]
        except ValueError as exc:
            return str(exc)
        variant = Variant(encoded, VariantType(node.variant_type))
        request = WriteValue(
            NodeId=node.node_id, AttributeId=AttributeIds.Value, Value=DataValue(variant)
        )
        client = self._require()
        try:
            results = await client.uaclient.write(WriteParameters(NodesToWrite=[request]))
        except UaStatusCodeError as exc:
            if status_name(exc.code) in _LINK_CODES:
                raise LinkError(f"write to {tag}: {status_name(exc.code)}") from None
            return f"the server refused it: {status_name(exc.code)}"
        except _LINK_FAILURES as exc:
            raise LinkError(f"write to {tag}: {failure(exc)}") from None
        if results and results[0].is_bad():
            return f"the server refused it: {results[0].name}"
        return None

    async def read(self, tags: Sequence[str]) -> dict[str, tuple[object, int]]:
        """(value, status code) of each tag's node now. Raises LinkError."""
        client = self._require()
        try:
            values = await _read(client, [(self.info[t].node_id, AttributeIds.Value) for t in tags])
        except UaStatusCodeError as exc:
            raise LinkError(f"read back: {status_name(exc.code)}") from None
        except _LINK_FAILURES as exc:
            raise LinkError(f"read back: {failure(exc)}") from None
        out: dict[str, tuple[object, int]] = {}
        for tag, dv in zip(tags, values, strict=True):
            status = dv.StatusCode.value if dv.StatusCode else 0
            out[tag] = (dv.Value.Value if dv.Value is not None else None, status)
        return out

    # ---- health and close -----------------------------------------------------------------

    @property
    def broken(self) -> str | None:
        """Why the link is gone, if it is (the socket closed, the server stopped answering)."""
        if self.lost is not None:
            return self.lost
        client = self._client
        if client is None:
            return "not connected"
        if client.uaclient.state.value != "connected":
            return f"connection {client.uaclient.state.value}"
        consumer = self._consumer
        if consumer is not None and consumer.done():
            return "the subscription ended"
        return None

    async def _lost(self, exc: Exception) -> None:
        self._lost_now(f"connection lost: {failure(exc)}")

    def _lost_now(self, message: str) -> None:
        if self.lost is None:
            self.lost = message
            self._on_lost(message)

    async def close(self) -> None:
        """Bounded in time; a link already gone is only torn down locally."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consumer
        client, self._client = self._client, None
        if client is None:
            return
        client.connection_lost_callback = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), self.connection.timeout)
        with contextlib.suppress(Exception):
            client.disconnect_socket()

    def _require(self) -> Client:
        if self._client is None or self.lost is not None:
            raise LinkError(self.lost or "not connected")
        return self._client


# ---- helpers --------------------------------------------------------------------------------


async def _read(client: Client, what: Sequence[tuple[Any, Any]]) -> list[Any]:
    params = ReadParameters()
    params.NodesToRead = [ReadValueId(NodeId=n, AttributeId=a) for n, a in what]
    params.TimestampsToReturn = TimestampsToReturn.Neither
    result: list[Any] = await client.uaclient.read(params)
    return result


async def _variant_type(client: Client, node_id: Any, data_type: Any) -> int | None:
    """The built-in type a node's values travel as; subtypes (Duration, enumerations, a vendor's
    types) are followed to their built-in base."""
    if isinstance(data_type, NodeId) and data_type.NamespaceIndex == 0:
        ident = data_type.Identifier
        if isinstance(ident, int) and ident in TYPE_NAMES:
            return ident
        if ident == _ENUMERATION:
            return _INT32
    try:
        variant = await client.get_node(node_id).read_data_type_as_variant_type()
    except (UaError, *_LINK_FAILURES):
        return None
    number = int(variant.value)
    return number if number in TYPE_NAMES or number == LOCALIZED_TEXT else None


async def _units(client: Client, node_ids: Sequence[Any]) -> list[str | None]:
    """Each node's EngineeringUnits DisplayName (None where the server declares none)."""
    paths = []
    for node_id in node_ids:
        path = BrowsePath()
        path.StartingNode = node_id
        path.RelativePath = RelativePath.from_string("/0:EngineeringUnits")
        paths.append(path)
    found = await client.uaclient.translate_browsepaths_to_nodeids(paths)
    targets = [
        r.Targets[0].TargetId if r.StatusCode.is_good() and r.Targets else None for r in found
    ]
    where = [(i, NodeId(t.Identifier, t.NamespaceIndex)) for i, t in enumerate(targets) if t]
    units: list[str | None] = [None] * len(node_ids)
    if where:
        values = await _read(client, [(n, AttributeIds.Value) for _, n in where])
        for (i, _), dv in zip(where, values, strict=True):
            eu = dv.Value.Value if dv.Value is not None else None
            text = getattr(getattr(eu, "DisplayName", None), "Text", None)
            units[i] = text if isinstance(text, str) and text.strip() else None
    return units


def _classified(exc: UaStatusCodeError, c: OpcUaClient) -> LinkError:
    name = status_name(exc.code)
    if name.startswith(("BadIdentity", "BadUser")):
        return ConfigError(f"the server refused the login ({c.login}): {name}")
    if name.startswith(("BadCertificate", "BadSecurity", "BadNoValidCertificates")):
        return ConfigError(
            f"the server refused the secure channel (security {c.security}, {c.policy}): {name}"
        )
    return LinkError(f"cannot connect: {name}")


def _check_files(c: OpcUaClient) -> None:
    files = ("certificate", "private_key", "server_certificate")
    for what in (*files, "user_certificate", "user_private_key"):
        path = getattr(c, what)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{what} {path}: no such file")


def _uri_of(certificate: str) -> str | None:
    """Servers check that the client's application URI is the one in its certificate."""
    try:
        data = Path(certificate).read_bytes()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
