"""A read-only AnalyzerContext built from a UOD alone, for `check` (no hardware, no engine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from engine.commands import CommandManager
from engine.lang.units import Registry, define_unit, new_unit_registry
from engine.tags import TagSpecLookup

if TYPE_CHECKING:
    from engine.uod.definition import Uod


class UodContext(TagSpecLookup):
    def __init__(self, uod: Uod, ureg: Registry | None = None) -> None:
        """`ureg`: the UOD's own registry when the caller has it (the builder's checks, `check`):
        a second registry costs ~0.03-0.1 s and ~3 MB at every engine start."""
        self._uod = uod
        self._ureg: Registry = ureg if ureg is not None else new_unit_registry()
        for definition in uod.unit_definitions:
            define_unit(self._ureg, definition)
        self._specs = {spec.name: spec for spec in uod.tags}
        self._commands = CommandManager(uod.commands, self._ureg)

    @property
    def ureg(self) -> Registry:
        return self._ureg

    def tag_names(self) -> Sequence[str]:
        return list(self._specs)

    def command_names(self) -> Sequence[str]:
        return self._commands.names()

    def validate_command(self, name: str, argument: str | None) -> str | None:
        return self._commands.validate(name, argument)

    def base_units(self) -> Mapping[str, str]:
        return self._uod.base_units
