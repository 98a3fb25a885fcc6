"""Who sees what over OPC UA: each session shows its user only the units the HTTP API would.

asyncua has one address space for everyone, so the checks sit on the session's services: a
browse leaves out other units' nodes, and a read, subscription or path lookup of a node of a
unit the user may not see answers BadUserAccessDenied. Every write is refused the same way:
the server is read-only. Visibility is asked at each request (required roles come with the UOD
and can change when the engine registers again); the user's role is the one at login.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaprotocol_auto import (
    AddNodesItem,
    AddNodesResult,
    AddReferencesItem,
    BrowseParameters,
    BrowsePath,
    BrowsePathResult,
    BrowseResult,
    CreateMonitoredItemsParameters,
    DeleteNodesParameters,
    DeleteReferencesItem,
    MonitoredItemCreateResult,
    ReadParameters,
    TransferResult,
    TransferSubscriptionsParameters,
    WriteParameters,
)
from asyncua.ua.uatypes import DataValue, NodeId, StatusCode

from aggregator.opcua.values import status


def denied() -> StatusCode:
    return status(StatusCodes.BadUserAccessDenied)


Visible = Callable[[str, str], bool]
"""(role, unit id) -> may the role see the unit (aggregator.api.service.unit_visible)."""
Owner = Callable[[NodeId], str | None]
"""node id -> the unit it belongs to, None for nodes outside any unit."""


@dataclass
class SetpointUser(User):
    setpoint_role: str = ""


class SetpointInternalServer(InternalServer):
    """Hands out sessions that check access; the rest is asyncua's."""

    def __init__(self, user_manager: UserManager, visible: Visible, owner: Owner) -> None:
        super().__init__(user_manager=user_manager)
        self.visible = visible
        self.owner = owner

    def create_session(
        self, name: str, user: User | None = None, external: bool = False
    ) -> InternalSession:
        user = user if user is not None else User(role=UserRole.Anonymous)
        return SetpointSession(self, self.aspace, self.subscription_service, name, user, external)


class SetpointSession(InternalSession):
    iserver: SetpointInternalServer

    def allowed(self, node_id: NodeId) -> bool:
        unit_id = self.iserver.owner(node_id)
        if unit_id is None:
            return True
        role = self.user.setpoint_role if isinstance(self.user, SetpointUser) else ""
        return bool(role) and self.iserver.visible(role, unit_id)

    async def read(self, params: ReadParameters) -> list[DataValue]:
        allowed = [self.allowed(item.NodeId) for item in params.NodesToRead]
        if all(allowed):
            return await super().read(params)
        params.NodesToRead = [i for i, ok in zip(params.NodesToRead, allowed, strict=True) if ok]
        results = iter(await super().read(params) if params.NodesToRead else [])
        return [next(results) if ok else DataValue(StatusCode=denied()) for ok in allowed]

    async def write(self, params: WriteParameters) -> list[StatusCode]:
        return [denied() for _ in params.NodesToWrite]

    async def browse(self, params: BrowseParameters) -> list[BrowseResult]:
        results = await super().browse(params)
        for item, result in zip(params.NodesToBrowse, results, strict=True):
            if not self.allowed(item.NodeId):
                result.StatusCode = denied()
                result.References = []
            else:
                result.References = [r for r in result.References if self.allowed(r.NodeId)]
        return results

    async def translate_browsepaths_to_nodeids(
        self, params: list[BrowsePath]
    ) -> list[BrowsePathResult]:
        results = await super().translate_browsepaths_to_nodeids(params)
        for path, result in zip(params, results, strict=True):
            targets = [t for t in result.Targets if self.allowed(t.TargetId)]
            if not self.allowed(path.StartingNode) or (result.Targets and not targets):
                result.StatusCode = denied()
                targets = []
            result.Targets = targets
        return results

    async def create_monitored_items(
        self, params: CreateMonitoredItemsParameters
    ) -> list[MonitoredItemCreateResult]:
        requested = params.ItemsToCreate
        allowed = [self.allowed(item.ItemToMonitor.NodeId) for item in requested]
        if all(allowed):
            return await super().create_monitored_items(params)
        params.ItemsToCreate = [i for i, ok in zip(requested, allowed, strict=True) if ok]
        created = iter(await super().create_monitored_items(params) if params.ItemsToCreate else [])
        return [
            next(created) if ok else MonitoredItemCreateResult(StatusCode=denied())
            for ok in allowed
        ]

    async def transfer_subscriptions(  # type: ignore[override]
        self, params: TransferSubscriptionsParameters, callback: Callable[..., Any]
    ) -> list[TransferResult]:
        """Refused: a subscription made by another user could carry units this one may not
        see; a client that lost its session simply subscribes again."""
        return [TransferResult(StatusCode=denied()) for _ in params.SubscriptionIds]

    async def add_nodes(self, params: list[AddNodesItem]) -> list[AddNodesResult]:
        return [AddNodesResult(StatusCode=denied()) for _ in params]

    async def delete_nodes(self, params: DeleteNodesParameters) -> list[StatusCode]:
        return _denied(params.NodesToDelete)

    async def add_references(self, params: list[AddReferencesItem]) -> list[StatusCode]:
        return _denied(params)

    async def delete_references(self, params: list[DeleteReferencesItem]) -> list[StatusCode]:
        return _denied(params)


def _denied(items: Iterable[object]) -> list[StatusCode]:
    return [denied() for _ in items]
