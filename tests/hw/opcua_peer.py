"""A real asyncua server for the OPC UA driver tests, on its own thread and event loop.

Its own thread, so the driver under test (on the test's loop) never shares a loop with its peer,
and one server (2-3 s to build the standard address space) serves a whole test module: a test
restarts it with `stop()`/`start()`, which keeps its nodes and port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography.hazmat.primitives import serialization

from aggregator.opcua.certs import write_self_signed
from tests.net import free_port

T = TypeVar("T")

NS = "urn:setpoint:test"
# name -> (VariantType, initial value, writable, EngineeringUnits or None)
NODES: dict[str, tuple[ua.VariantType, Any, bool, str | None]] = {
    "FT01": (ua.VariantType.Double, 1.5, False, "L/h"),
    "TT01": (ua.VariantType.Double, 20.0, False, "°C"),
    "PU01": (ua.VariantType.Float, 0.0, True, "%"),
    "Double": (ua.VariantType.Double, 0.0, True, None),
    "Float": (ua.VariantType.Float, 0.0, True, None),
    "SByte": (ua.VariantType.SByte, 0, True, None),
    "Byte": (ua.VariantType.Byte, 0, True, None),
    "Int16": (ua.VariantType.Int16, 0, True, None),
    "UInt16": (ua.VariantType.UInt16, 0, True, None),
    "Int32": (ua.VariantType.Int32, 0, True, None),
    "UInt32": (ua.VariantType.UInt32, 0, True, None),
    "Int64": (ua.VariantType.Int64, 0, True, None),
    "UInt64": (ua.VariantType.UInt64, 0, True, None),
    "Boolean": (ua.VariantType.Boolean, False, True, None),
    "String": (ua.VariantType.String, "", True, None),
    "Text": (ua.VariantType.LocalizedText, ua.LocalizedText("hello"), False, None),
    "Limited": (ua.VariantType.Double, 0.0, True, None),  # refuses values above 100
}


class Users(UserManager):
    """Username/password and certificate logins; anonymous is refused when `anonymous` is False."""

    def __init__(self, passwords: dict[str, str], certificates: list[bytes], anonymous: bool):
        self.passwords = passwords
        self.certificates = certificates
        self.anonymous = anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None,
        certificate: Any = None,
    ) -> User | None:  # fmt: skip
        if username is not None:
            if self.passwords.get(username) == password:
                return User(role=UserRole.User, name=username)
            return None
        if certificate is not None:
            der = (
                certificate
                if isinstance(certificate, bytes)
                else certificate.public_bytes(serialization.Encoding.DER)
            )
            return User(role=UserRole.User, name="cert") if der in self.certificates else None
        return User(role=UserRole.User) if self.anonymous else None


class OpcUaPeer:
    def __init__(self, secure: tuple[Path, Path] | None = None, users: Users | None = None):
        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/setpoint-test/"
        self.secure = secure
        self.users = users
        self.ns = 0
        self.running = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server: Server = self.call(self._build)

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout)

    async def _build(self) -> Server:
        server = Server(user_manager=self.users) if self.users else Server()
        await server.init()
        server.set_endpoint(self.url)
        if self.secure is not None:
            cert, key = self.secure
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.NoSecurity,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        self.ns = await server.register_namespace(NS)
        device = await server.nodes.objects.add_object(self.ns, "Device")
        for name, (vt, value, writable, unit) in NODES.items():
            var = await device.add_variable(
                self._node(name), name, ua.Variant(value, vt), varianttype=vt
            )
            if writable:
                await var.set_writable()
            if unit is not None:
                eu = ua.EUInformation(
                    NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                    UnitId=-1,
                    DisplayName=ua.LocalizedText(unit),
                    Description=ua.LocalizedText(unit),
                )
                await var.add_property(0, "EngineeringUnits", eu)
        server.set_attribute_value_setter(self._node("Limited"), _limited)
        await server.start()
        self.running = True
        return server

    def node_id(self, name: str) -> str:
        return f"ns={self.ns};s={name}"

    def _node(self, name: str) -> ua.NodeId:
        return ua.NodeId(ua.String(name), ua.Int16(self.ns))

    def set(self, name: str, value: Any, status: int = 0) -> None:
        vt = NODES[name][0]
        dv = ua.DataValue(ua.Variant(value, vt), StatusCode=ua.StatusCode(ua.UInt32(status)))
        self.call(lambda: self.server.write_attribute_value(self._node(name), dv))

    def get(self, name: str) -> Any:
        dv = self.server.read_attribute_value(self._node(name))
        return dv.Value.Value if dv.Value is not None else None

    def stop(self) -> None:
        self.running = False
        self.call(self.server.stop)

    def start(self) -> None:
        self.call(self.server.start)
        self.running = True

    def close(self) -> None:
        if self.running:
            self.stop()
        self.call(_cancel_the_rest)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _cancel_the_rest() -> None:
    """The server leaves session timers behind after stop(); they go with the loop."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _limited(node: Any, attr: Any, dv: ua.DataValue) -> None:
    value = dv.Value.Value if dv.Value is not None else None
    if isinstance(value, float) and value > 100:
        raise UaStatusCodeError(StatusCodes.BadOutOfRange)  # type: ignore[no-untyped-call]  # asyncua: __new__ untyped
    node.attributes[attr].value = dv


def self_signed(directory: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A certificate and key as OPC UA applications want them (the aggregator's own maker: the
    application URI and this host in the subject alternative name), in `directory`."""
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    write_self_signed(
        cert_path,
        key_path,
        common_name=name,
        app_uri=uri,
        hosts=["localhost", socket.gethostname()],
    )
    return cert_path, key_path
