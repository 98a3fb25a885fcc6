"""The OPC UA server's life in the app: started with it, fed by the live hub, stopped with it.

Ingest publishes every live change on the app's LiveHub, synchronously, and must never wait
on a client; so the hub subscriber here only files the change (the latest value per tag, the
units whose summary or structure changed) and wakes one task, which applies them to the
address space, where asyncua turns them into data changes for the subscribed clients. A burst
of changes to one tag between two passes becomes one write: a client always gets the latest
value, and ingest's cost does not grow with the number of OPC UA clients.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from aiohttp import web
from asyncua.server.server import Server
from asyncua.ua.uaprotocol_auto import UserNameIdentityToken
from asyncua.ua.uatypes import NodeId, SecurityPolicyType

from aggregator.api.service import ctx_of, record, state_of, unit_summary, unit_visible, uod_of
from aggregator.opcua import ENDPOINT_PATH, OpcUaConfig, OpcUaStartError
from aggregator.opcua.access import SetpointInternalServer
from aggregator.opcua.certs import CertificateError, application_uri, ensure_server_certificate
from aggregator.opcua.space import AddressSpace
from aggregator.opcua.users import CheckRation, LoginOutcome, SetpointUserManager
from aggregator.opcua.values import utc_now

log = logging.getLogger(__name__)

WRITES_PER_YIELD = 500
"""A long pass gives the loop back this often, so ingest is never held up by a big batch."""


class OpcUaService:
    def __init__(self, app: web.Application, config: OpcUaConfig) -> None:
        self.app = app
        self.config = config
        self.server: Server | None = None
        self.space: AddressSpace | None = None
        self.port = config.port
        self._tags: dict[str, dict[str, dict[str, Any]]] = {}
        self._units: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._audits: set[asyncio.Task[None]] = set()

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.config.host}:{self.port}{ENDPOINT_PATH}"

    # --- life ---------------------------------------------------------------------------------

    async def start(self, app: web.Application) -> None:
        ctx = ctx_of(app)
        state = state_of(app)
        _check_port(self.config.host, self.config.port)
        uri = application_uri()
        try:
            cert = ensure_server_certificate(self.config.data_dir, self.config.host, uri)
        except CertificateError as exc:
            raise OpcUaStartError(str(exc)) from None
        if cert.created:
            log.info("OPC UA server certificate created: %s", cert.cert_path)
        users = SetpointUserManager(
            lookup=ctx.storage.user_by_name,
            throttle=state.throttle,
            clock=state.throttle_clock,
            ration=CheckRation(self.config.password_checks_per_second, burst=5.0),
            on_login=self._audit_login,
        )
        iserver = SetpointInternalServer(
            users, visible=lambda role, unit: unit_visible(app, role, unit), owner=self._owner
        )
        server = Server(iserver=iserver)
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.config.host}:{self.config.port}{ENDPOINT_PATH}")
        server.set_server_name("Setpoint aggregator")
        await server.set_application_uri(uri)
        server.set_security_policy(
            [
                SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                SecurityPolicyType.Basic256Sha256_Sign,
            ]
        )
        server.set_identity_tokens([UserNameIdentityToken])
        await server.load_certificate(str(cert.cert_path))
        await server.load_private_key(str(cert.key_path))
        self.space = await AddressSpace.create(server)
        self._unsubscribe = ctx.hub.subscribe(self._on_live)  # before filling: nothing missed
        for unit_id in sorted(ctx.live.engines):
            await self._sync_unit(unit_id)
        try:
            await server.start()
        except OSError as exc:
            self._unsubscribe()
            raise OpcUaStartError(_bind_problem(self.config.host, self.config.port, exc)) from None
        self.server = server
        if server.bserver is not None:
            self.port = server.bserver.port or self.config.port
        self._task = asyncio.create_task(self._apply_loop(), name="opcua-apply")
        log.info("OPC UA server at %s", self.endpoint_url)

    async def stop(self, app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self._audits:
            await asyncio.gather(*self._audits, return_exceptions=True)

    # --- from the live hub (synchronous, inside ingest: only file and wake) --------------------

    def _on_live(self, topic: str, data: Any) -> None:
        if topic == "units":
            unit_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(unit_id, str):
                self._units.add(unit_id)
                self._wake.set()
            return
        if not topic.startswith("unit/"):
            return
        unit_id, _, kind = topic[len("unit/") :].rpartition("/")
        if kind == "tags":
            tags = data.get("tags", []) if isinstance(data, dict) else data
            pending = self._tags.setdefault(unit_id, {})
            for tag in tags:
                if isinstance(tag, dict):
                    pending[str(tag.get("name"))] = tag
            self._wake.set()
        elif kind in ("control", "registration"):
            self._units.add(unit_id)
            self._wake.set()

    # --- into the address space --------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply()
            except Exception:
                log.exception("OPC UA: applying live changes failed; continuing")

    async def _apply(self) -> None:
        space = self.space
        assert space is not None
        units, self._units = self._units, set()
        tags, self._tags = self._tags, {}
        for unit_id in units:
            await self._sync_unit(unit_id)
        now = utc_now()
        written = 0
        for unit_id, batch in tags.items():
            unit = space.units.get(unit_id)
            if unit is None or not batch.keys() <= unit.tags.keys():
                await self._sync_unit(unit_id)
                unit = space.units.get(unit_id)
                if unit is None:
                    continue
            for tag in batch.values():
                await space.write_tag(unit, tag, now)
                written += 1
                if written % WRITES_PER_YIELD == 0:
                    await asyncio.sleep(0)

    async def _sync_unit(self, unit_id: str) -> None:
        """The unit's nodes as the live state has it: made, completed or removed."""
        space = self.space
        assert space is not None
        live = ctx_of(self.app).live.engines.get(unit_id)
        if live is None:
            await space.remove_unit(unit_id)
            return
        unit = space.units.get(unit_id) or await space.add_unit(unit_id, unit_id)
        added = await space.ensure_tags(unit, uod_of(self.app, unit_id), live.tags)
        summary = unit_summary(self.app, live)
        await space.write_fields(
            unit,
            {
                "State": summary.state,
                "RunId": summary.run_id or "",
                "Block": summary.block,
                "Online": summary.online,
            },
        )
        now = utc_now()
        for name in added:
            current = live.tags.get(name)
            if current is not None:
                await space.write_tag(unit, current.as_json(), now)

    def _owner(self, node_id: NodeId) -> str | None:
        if self.space is None or node_id.NamespaceIndex != self.space.ns:
            return None
        return self.space.owner.get(NodeId(node_id.Identifier, node_id.NamespaceIndex))

    # --- audit ----------------------------------------------------------------------------------

    def _audit_login(self, outcome: LoginOutcome) -> None:
        """Recorded like an HTTP login (action "login"), with via "opcua"; asyncua asks
        synchronously, so the record is written by a task."""
        task = asyncio.get_running_loop().create_task(self._record(outcome))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    async def _record(self, outcome: LoginOutcome) -> None:
        try:
            await record(
                self.app,
                outcome.username,
                "login",
                new={"ok": outcome.ok, "result": outcome.result, "via": "opcua"},
            )
            for lockout in outcome.lockouts:
                await record(
                    self.app,
                    outcome.username,
                    "login lockout",
                    new={
                        "locked": lockout.key,
                        "seconds": lockout.seconds,
                        "failures": lockout.failures,
                        "via": "opcua",
                    },
                )
        except Exception:
            log.exception("OPC UA: recording a login in the audit trail failed")


def _check_port(host: str, port: int) -> None:
    """A taken port is a one-line error before asyncua logs a traceback about it."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OpcUaStartError(f"cannot serve OPC UA on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise OpcUaStartError(_bind_problem(host, port, exc)) from None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, 48):
        return (
            f"OPC UA port {port} on {host} is already in use (another OPC UA server?); "
            "choose another with --opcua-port"
        )
    return f"cannot serve OPC UA on {host}:{port}: {exc.strerror or exc}"


OPCUA_KEY = web.AppKey("setpoint_opcua", OpcUaService)


def install(app: web.Application, config: OpcUaConfig) -> None:
    service = OpcUaService(app, config)
    app[OPCUA_KEY] = service
    app.on_startup.append(service.start)
    app.on_shutdown.append(service.stop)
