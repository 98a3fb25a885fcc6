"""The address space: Objects/Setpoint/<unit id>/{Tags/<tag>, State, RunId, Block, Online}.

Node ids are strings in the Setpoint namespace built from the unit id, so a client can keep
them across restarts: `ns=<i>;s=<unit id>/Tags/<tag>`. Every node made here is remembered with
the unit it belongs to; that map is what the per-user access checks consult (access.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uatypes import (
    DataValue,
    DateTime,
    LocalizedText,
    NodeId,
    QualifiedName,
    Variant,
    VariantType,
)

from aggregator.opcua.values import (
    engineering_units,
    node_id,
    plain_value,
    standard_node,
    tag_value,
    utc_now,
    variant_type_for,
)
from protocol import ScalarValue, TagDescription, UodDescription

NAMESPACE_URI = "urn:setpoint:aggregator"

UNIT_FIELDS: dict[str, VariantType] = {
    "State": VariantType.String,
    "RunId": VariantType.String,
    "Block": VariantType.String,
    "Online": VariantType.Boolean,
}
DATA_TYPES: dict[VariantType, int] = {
    VariantType.String: ObjectIds.String,
    VariantType.Boolean: ObjectIds.Boolean,
    VariantType.Double: ObjectIds.Double,
}


@dataclass
class TagNode:
    node_id: NodeId
    vtype: VariantType


@dataclass
class UnitNodes:
    unit_id: str
    node: Node
    tags_folder: Node
    tags: dict[str, TagNode] = field(default_factory=dict)
    fields: dict[str, NodeId] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    """Values of the unit fields as last written, so an unchanged summary sends no change."""


def browse_name(name: str) -> str:
    """Browse paths are written with "/" between names (pc-7/Chromatography would read as two
    steps), so a "/" in a unit id or tag name becomes "_" in its browse name; the display name
    and the node id keep it."""
    return name.replace("/", "_")


class AddressSpace:
    def __init__(self, server: Server, namespace: int, root: Node) -> None:
        self.server = server
        self.ns = namespace
        self.root = root
        self.units: dict[str, UnitNodes] = {}
        self.owner: dict[NodeId, str] = {}

    @classmethod
    async def create(cls, server: Server) -> AddressSpace:
        ns = await server.register_namespace(NAMESPACE_URI)
        root = await server.nodes.objects.add_folder(
            node_id("Setpoint", ns), QualifiedName("Setpoint", ns)
        )
        return cls(server, ns, root)

    def _id(self, text: str) -> NodeId:
        return node_id(text, self.ns)

    def _own(self, unit_id: str, node_id: NodeId) -> NodeId:
        self.owner[node_id] = unit_id
        return node_id

    async def add_unit(self, unit_id: str, display: str) -> UnitNodes:
        name = QualifiedName(browse_name(unit_id), self.ns)
        node = await self.root.add_object(self._own(unit_id, self._id(unit_id)), name)
        await node.write_attribute(
            AttributeIds.DisplayName, DataValue(Variant(LocalizedText(display)))
        )
        folder = await node.add_folder(
            self._own(unit_id, self._id(f"{unit_id}/Tags")), QualifiedName("Tags", self.ns)
        )
        unit = UnitNodes(unit_id, node, folder)
        for field_name, vtype in UNIT_FIELDS.items():
            var = await node.add_variable(
                self._own(unit_id, self._id(f"{unit_id}/{field_name}")),
                QualifiedName(field_name, self.ns),
                None,
                datatype=standard_node(DATA_TYPES[vtype]),
            )
            unit.fields[field_name] = var.nodeid
        self.units[unit_id] = unit
        return unit

    async def add_tag(
        self,
        unit: UnitNodes,
        name: str,
        description: TagDescription | None,
        value: ScalarValue,
        unit_text: str | None,
    ) -> TagNode:
        vtype = variant_type_for(value, description)
        node_id = self._own(unit.unit_id, self._id(f"{unit.unit_id}/Tags/{name}"))
        var = await unit.tags_folder.add_variable(
            node_id,
            QualifiedName(browse_name(name), self.ns),
            None,
            datatype=standard_node(DATA_TYPES[vtype]),
        )
        if description is not None and description.description:
            await var.write_attribute(
                AttributeIds.Description,
                DataValue(Variant(LocalizedText(description.description))),
            )
        units = unit_text if unit_text is not None else (description.unit if description else None)
        prop = await var.add_property(
            self._own(unit.unit_id, self._id(f"{unit.unit_id}/Tags/{name}/EngineeringUnits")),
            QualifiedName("EngineeringUnits", 0),
            engineering_units(units),
            datatype=standard_node(ObjectIds.EUInformation),
        )
        self.owner[prop.nodeid] = unit.unit_id
        tag = TagNode(node_id, vtype)
        unit.tags[name] = tag
        await self.write(
            node_id,
            tag_value({"value": None, "quality": "bad", "tick": None}, vtype, utc_now()),
        )
        return tag

    async def ensure_tags(
        self, unit: UnitNodes, uod: UodDescription | None, live_tags: dict[str, Any]
    ) -> list[str]:
        """Nodes for the UOD's tags and any live tag the UOD does not name; the names added."""
        described = {t.name: t for t in uod.tags} if uod is not None else {}
        added = []
        for name in list(described) + [n for n in live_tags if n not in described]:
            if name in unit.tags:
                continue
            added.append(name)
            live = live_tags.get(name)
            await self.add_tag(
                unit,
                name,
                described.get(name),
                getattr(live, "value", None),
                getattr(live, "unit", None),
            )
        return added

    async def remove_unit(self, unit_id: str) -> None:
        unit = self.units.pop(unit_id, None)
        if unit is None:
            return
        await self.server.delete_nodes([unit.node], recursive=True)
        for gone in [n for n, owner in self.owner.items() if owner == unit_id]:
            del self.owner[gone]

    async def write_tag(self, unit: UnitNodes, tag: dict[str, Any], now: DateTime) -> None:
        node = unit.tags.get(str(tag.get("name")))
        if node is not None:
            await self.write(node.node_id, tag_value(tag, node.vtype, now))

    async def write_fields(self, unit: UnitNodes, values: dict[str, Any]) -> None:
        now = utc_now()
        for field_name, value in values.items():
            if unit.last.get(field_name, ...) == value:
                continue
            unit.last[field_name] = value
            vtype = UNIT_FIELDS[field_name]
            await self.write(unit.fields[field_name], plain_value(value, vtype, now))

    async def write(self, node_id: NodeId, value: DataValue) -> None:
        await self.server.iserver.aspace.write_attribute_value(node_id, AttributeIds.Value, value)
