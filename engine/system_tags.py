"""The system tags every unit has (pcode.md section 11)."""

from __future__ import annotations

from engine.tags import TagSpec

_STATES = ("Stopped", "Running", "Paused", "Holding", "Restarting")


def system_tag_specs() -> list[TagSpec]:
    return [
        TagSpec("System State", "system", choices=_STATES, initial="Stopped"),
        TagSpec("Method Status", "system", choices=("OK", "Error"), initial="OK"),
        TagSpec("Run Id", "system", initial=""),
        TagSpec("Run Time", "system", unit="s", initial=0.0),
        TagSpec("Process Time", "system", unit="s", initial=0.0),
        TagSpec("Block", "system", initial=""),
        TagSpec("Block Time", "system", unit="s", initial=0.0),
        TagSpec("Scope Time", "system", unit="s", initial=0.0),
        TagSpec("Base", "system", initial="min"),
        TagSpec("Run Counter", "system", initial=0),
        TagSpec("Mark", "system", initial=""),
        TagSpec("Batch Name", "system", initial=""),
        TagSpec("Clock", "system", unit="s", initial=0.0, description="wall-clock UTC epoch"),
        TagSpec(
            "Connection Status",
            "system",
            choices=("Connected", "Disconnected"),
            initial="Connected",
        ),
    ]


SYSTEM_TAG_NAMES = frozenset(
    [s.name for s in system_tag_specs()]
    + ["Accumulated Volume", "Block Volume", "Accumulated CV", "Block CV"]
)
