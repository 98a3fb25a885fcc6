"""Several drivers behind one `Hardware`, e.g. a balance and a pump on two serial ports."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from engine.hw.base import (
    ConnectionState,
    Hardware,
    HardwareEvent,
    OutputCheck,
    OutputResult,
    Reading,
    SafeWriter,
    ScalarValue,
)

_SEVERITY = {
    ConnectionState.OK: 0,
    ConnectionState.ISSUE: 1,
    ConnectionState.RECONNECT: 2,
    ConnectionState.ERROR: 3,
}


class CompositeHardware:
    """Routes each tag to the part that declares it; the state is that of the worst part.

    Each part keeps its own recovery machine, so one pulled cable masks or errors only its tags;
    events keep their `source` so the error log says which port failed.
    """

    def __init__(self, parts: Sequence[Hardware]) -> None:
        if not parts:
            raise ValueError("CompositeHardware needs at least one part")
        self.parts = list(parts)
        self._owner: dict[str, Hardware] = {}
        for part in self.parts:
            for tag in _declared_tags(part):
                if tag in self._owner:
                    raise ValueError(f"tag {tag!r} is declared by two hardware parts")
                self._owner[tag] = part

    @property
    def connection_state(self) -> ConnectionState:
        return max((p.connection_state for p in self.parts), key=_SEVERITY.__getitem__)

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.parts))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.parts))

    def snapshot(self) -> Mapping[str, Reading]:
        merged: dict[str, Reading] = {}
        for part in self.parts:
            merged.update(part.snapshot())
        return MappingProxyType(merged)

    def write(self, values: Mapping[str, ScalarValue]) -> None:
        self._route(values, safe=False)

    def write_safe(self, values: Mapping[str, ScalarValue]) -> None:
        """Tag safe values, forced in each part that can (see `SafeWriter`)."""
        self._route(values, safe=True)

    def _route(self, values: Mapping[str, ScalarValue], *, safe: bool) -> None:
        """Every part gets its values even if a tag is unknown or another part fails."""
        per_part: dict[int, dict[str, ScalarValue]] = {}
        errors: list[str] = []
        unknown = [
            f"no hardware part declares tag {tag!r}" for tag in values if tag not in self._owner
        ]
        for tag, value in values.items():
            part = self._owner.get(tag)
            if part is None:
                continue
            per_part.setdefault(id(part), {})[tag] = value
        for part in self.parts:
            if id(part) in per_part:
                try:
                    if safe and isinstance(part, SafeWriter):
                        part.write_safe(per_part[id(part)])
                    else:
                        part.write(per_part[id(part)])
                except Exception as exc:
                    errors.append(_failure(part, exc))
        if unknown and not errors:
            raise KeyError("; ".join(unknown))
        _raise_combined("writing safe values" if safe else "write", [*unknown, *errors])

    def write_safe_values(self) -> None:
        """Every part gets its safe values even if another part fails: one broken driver must
        not leave the other instruments unsafe."""
        errors: list[str] = []
        for part in self.parts:
            try:
                part.write_safe_values()
            except Exception as exc:
                errors.append(_failure(part, exc))
        _raise_combined("writing safe values", errors)

    def drain_events(self) -> list[HardwareEvent]:
        events = [e for part in self.parts for e in part.drain_events()]
        events.sort(key=lambda e: e.timestamp)
        return events

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        """All parts settle at once, so a slow port does not eat another part's time."""
        results = await asyncio.gather(
            *(p.settle_outputs(timeout) for p in self.parts), return_exceptions=True
        )
        out: list[OutputResult] = []
        for part, result in zip(self.parts, results, strict=True):
            if isinstance(result, Exception):
                out += _settle_failed(part, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                out += result
        return out


def _declared_tags(part: Hardware) -> list[str]:
    """Every tag a part accepts, including write-only ones that never appear in snapshots."""
    for attr in ("registers", "exchanges"):
        declared = getattr(part, attr, None)
        if isinstance(declared, dict):
            return list(declared)
    return list(part.snapshot())


def _settle_failed(part: Hardware, exc: Exception) -> list[OutputResult]:
    """A part whose settling raised (a driver bug): its own safe values, if it says which, are
    not confirmed; the other parts' results stand."""
    safe_values = getattr(part, "_safe_values", None)
    values = safe_values() if callable(safe_values) else {}
    why = f"settling failed: {_failure(part, exc)}"
    return [OutputResult(tag, value, OutputCheck.FAILED, why) for tag, value in values.items()]


class CompositeWriteError(Exception):
    """Writing failed on one or more parts; the other parts were still written."""


def _failure(part: Hardware, exc: Exception) -> str:
    name = getattr(part, "name", None) or type(part).__name__
    return f"{name}: {type(exc).__name__}: {exc}"


def _raise_combined(what: str, errors: list[str]) -> None:
    if errors:
        raise CompositeWriteError(f"{what} failed on {len(errors)} part(s): " + "; ".join(errors))
