"""A process model served as a real OPC UA server (asyncua).

Like the Modbus simulator it stands in for a physical skid: the model steps on the server's own
wall clock, each output goes to its node (subscribers get the change), and a client's write to a
setpoint node reaches the model at once; a value the model refuses is answered BadOutOfRange and
the node keeps the value in force. Each measurement node carries its EngineeringUnits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from asyncua.common.node import Node
from asyncua.server.address_space import NodeData
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors._base import UaStatusCodeError
from asyncua.ua.uaprotocol_auto import EUInformation
from asyncua.ua.uatypes import DataValue, Int32, LocalizedText, NodeId, Variant, VariantType

from engine.sim.model import ProcessModel
from engine.simdev import opcua_map
from engine.simdev.modbus_sim import MODELS

_UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"


class OpcUaModelDevice:
    """Binds a ProcessModel to the nodes of `opcua_map.NODES` on an asyncua server."""

    def __init__(self, model: ProcessModel, server: Server, ns: int) -> None:
        self.model = model
        self.server = server
        self.ns = ns
        self.heartbeat = 0
        for tag, value in opcua_map.SAFE_VALUES.items():
            model.set_input(tag, value)

    @classmethod
    async def create(cls, model: ProcessModel, host: str, port: int) -> OpcUaModelDevice:
        server = Server()
        await server.init()
        server.set_endpoint(opcua_map.url(host, port))
        server.set_server_name("Setpoint simulated chromatography skid")
        ns = await server.register_namespace(opcua_map.NAMESPACE)
        skid = await server.nodes.objects.add_object(ns, "Chromatography")
        device = cls(model, server, ns)
        for tag, (kind, writable, unit, value) in opcua_map.NODES.items():
            await device._add(skid, tag, kind, writable, unit, value)
        await device.publish()
        return device

    async def _add(
        self, parent: Node, tag: str, kind: str, writable: bool, unit: str | None, value: Any
    ) -> None:
        vt = getattr(VariantType, kind)
        var = await parent.add_variable(self._id(tag), tag, Variant(value, vt), varianttype=vt)
        if unit is not None:
            eu = EUInformation(
                NamespaceUri=_UNECE,
                UnitId=Int32(-1),
                DisplayName=LocalizedText(unit),
                Description=LocalizedText(unit),
            )
            await var.add_property(0, "EngineeringUnits", eu)
        if writable:
            await var.set_writable()
            self.server.set_attribute_value_setter(var.nodeid, self._setter(tag))

    def _id(self, tag: str) -> NodeId:
        return NodeId.from_string(f"ns={self.ns};s={tag}")

    def _setter(self, tag: str) -> Callable[[NodeData, AttributeIds, DataValue], None]:
        def write(node: NodeData, attr: AttributeIds, dv: DataValue) -> None:
            value = dv.Value.Value if dv.Value is not None else None
            try:
                self.model.set_input(tag, value)  # type: ignore[arg-type]
            except (ValueError, TypeError):
                raise UaStatusCodeError(StatusCodes.BadOutOfRange) from None  # type: ignore[no-untyped-call]
            node.attributes[attr].value = dv

        return write

    async def step(self, dt: float) -> None:
        self.model.step(dt)
        await self.publish()

    async def publish(self) -> None:
        outputs = dict(self.model.outputs())
        flow = outputs.get("FT01", 0.0)
        self.heartbeat = (self.heartbeat + 1) % 2**32
        outputs["Heartbeat"] = self.heartbeat
        outputs["Pump Running"] = isinstance(flow, int | float) and flow > 0.1
        for tag, value in outputs.items():
            spec = opcua_map.NODES.get(tag)
            if spec is None or spec[1]:
                continue
            dv = DataValue(Variant(value, getattr(VariantType, spec[0])))
            await self.server.write_attribute_value(self._id(tag), dv)

    def value(self, tag: str) -> Any:
        dv = self.server.read_attribute_value(self._id(tag))
        return dv.Value.Value if dv.Value is not None else None


async def run_opcua_device(
    model_name: str,
    host: str,
    port: int,
    interval: float = 0.1,
    ready: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or the task is cancelled)."""
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose from {', '.join(MODELS)}")
    device = await OpcUaModelDevice.create(MODELS[model_name](), host, port)
    await device.server.start()
    ready(
        f"opcua device: {opcua_map.url(host, port)} ({model_name}, namespace {opcua_map.NAMESPACE})"
    )
    stop = stop or asyncio.Event()
    last = time.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            now = time.monotonic()
            await device.step(now - last)
            last = now
    finally:
        await device.server.stop()
