"""Checks that look inside the built drivers: how each tag meets its register."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.uod.draft import Problem

if TYPE_CHECKING:
    from engine.uod.assemble import Collected

HARDWARE_CHECKS: tuple[Callable[[Collected], list[Problem]], ...] = ()
