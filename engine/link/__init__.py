"""The engine's link to the aggregator: durable outbox, sans-I/O link machine, websocket shell.

The engine must never lose a stored message and never wait for the aggregator; the outbox makes
the first true, the machine/shell split keeps the second testable without sockets or sleeping.

Who may import it: engine.cli_run (which wires the link to the engine through engine.ports) and
tests. It imports engine.ports and protocol, never the engine's scan or the aggregator.
"""

from engine.link.client import EngineLink
from engine.link.machine import (
    Action,
    Close,
    Execute,
    LinkMachine,
    LinkPolicy,
    ReadOutbox,
    Rebase,
    ScheduleReconnect,
    Send,
    Span,
)
from engine.link.outbox import Outbox, StoredFrame

__all__ = [
    "Action",
    "Close",
    "EngineLink",
    "Execute",
    "LinkMachine",
    "LinkPolicy",
    "Outbox",
    "ReadOutbox",
    "Rebase",
    "ScheduleReconnect",
    "Send",
    "Span",
    "StoredFrame",
]
