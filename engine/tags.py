"""Tag values as the scan sees them: value, quality, simulated flag and change tracking.

Two change sets are kept because the engine reports at two rates: every scan the tags changed in
that scan go out as a live update, and every data-log interval the tags changed since the previous
sample go out as a stored sample. Tracking both here keeps the scan code free of bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from protocol.models import Quality, ScalarValue, TagDescription, TagValue

TagKind = Literal["reading", "choice", "entry", "calculated", "accumulator", "system"]
Direction = Literal["input", "output", "none"]


@dataclass(frozen=True)
class TagSpec:
    """The declaration of a tag, from the UOD or the engine's system tags."""

    name: str
    kind: TagKind
    unit: str | None = None
    direction: Direction = "none"
    choices: tuple[str, ...] = ()
    safe_value: ScalarValue = None
    initial: ScalarValue = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    line: int | None = None  # line of the UOD file that declared it, for error messages
    codes: tuple[tuple[str, ScalarValue], ...] = ()  # choice -> hardware value (e.g. 1 = VA01)
    command_only: bool = False  # an output without a safe value, written only when commanded

    def encode(self, value: ScalarValue) -> ScalarValue:
        """The hardware value for a tag value (the code of a choice, when codes are declared)."""
        if self.codes:
            for choice, code in self.codes:
                if choice == value:
                    return code
            raise ValueError(f"{self.name}: no code for {value!r}")
        return value

    def decode(self, raw: ScalarValue) -> ScalarValue:
        if self.codes and raw is not None:
            for choice, code in self.codes:
                if code == raw:
                    return choice
            raise ValueError(f"{self.name}: unknown code {raw!r}")
        return raw

    def describe(self) -> TagDescription:
        return TagDescription(
            name=self.name,
            unit=self.unit,
            kind=self.kind,
            direction=self.direction,
            choices=list(self.choices),
            safe_value=self.safe_value,
            description=self.description,
        )

    def check_value(self, value: ScalarValue) -> ScalarValue:
        """The value this tag stores for `value`; raises ValueError when it cannot hold it."""
        if value is None:
            return None
        if not isinstance(value, bool | int | float | str):
            raise ValueError(
                f"{self.name} needs a number, text or boolean, not {type(value).__name__}"
            )
        if self.choices:
            text = str(value)
            if text not in self.choices:
                raise ValueError(
                    f"{self.name} must be one of {', '.join(self.choices)}, not {value!r}"
                )
            return text
        if self.kind == "entry" or (self.unit is not None and self.kind != "system"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = float(str(value))
                except ValueError:
                    raise ValueError(f"{self.name} needs a number, not {value!r}") from None
            number = float(value)
            if math.isnan(number):
                raise ValueError(f"{self.name} got NaN")
            if self.minimum is not None and number < self.minimum:
                raise ValueError(f"{self.name} must be >= {self.minimum:g}, not {number:g}")
            if self.maximum is not None and number > self.maximum:
                raise ValueError(f"{self.name} must be <= {self.maximum:g}, not {number:g}")
            return number
        return value


class TagSpecLookup:
    """The unit and choices of a declared tag, for the P-code analyzer; mixed into the engine
    and the engine-less `check` context, which both keep their specs by name in `_specs`."""

    _specs: dict[str, TagSpec]

    def tag_unit(self, name: str) -> str | None:
        spec = self._specs.get(name)
        return spec.unit if spec else None

    def tag_choices(self, name: str) -> Sequence[str] | None:
        spec = self._specs.get(name)
        return list(spec.choices) if spec and spec.choices else None


@dataclass
class Tag:
    spec: TagSpec
    value: ScalarValue = None
    quality: Quality = Quality.GOOD
    tick: float = 0.0
    simulated: bool = False
    simulated_value: ScalarValue = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def effective(self) -> ScalarValue:
        return self.simulated_value if self.simulated else self.value

    def to_wire(self) -> TagValue:
        return TagValue(
            name=self.spec.name,
            value=self.effective,
            unit=self.spec.unit,
            tick=self.tick,
            quality=self.quality,
            simulated=self.simulated,
        )


@dataclass
class TagStore:
    """All tags of one engine, in declaration order."""

    tags: dict[str, Tag] = field(default_factory=dict)
    _live: dict[str, None] = field(default_factory=dict)  # ordered set
    _sample: dict[str, None] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: Iterable[TagSpec], now: float) -> TagStore:
        store = cls()
        for spec in specs:
            store.tags[spec.name] = Tag(spec, spec.initial, Quality.GOOD, now)
        return store

    def __contains__(self, name: object) -> bool:
        return name in self.tags

    def __getitem__(self, name: str) -> Tag:
        return self.tags[name]

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags.values())

    def value(self, name: str) -> ScalarValue:
        return self.tags[name].effective

    def update(
        self,
        name: str,
        value: ScalarValue,
        tick: float,
        quality: Quality = Quality.GOOD,
    ) -> bool:
        """Stores a new value; True (and marked changed) when value or quality differ."""
        tag = self.tags[name]
        tag.tick = tick
        old = tag.value
        quality_changed = tag.quality is not quality
        if old == value and not quality_changed and type(old) is type(value):
            return False
        tag.value = value
        tag.quality = quality
        if not tag.simulated or quality_changed:
            self._mark(name)
        return True

    def set_quality(self, name: str, quality: Quality, tick: float) -> None:
        tag = self.tags[name]
        if tag.quality is not quality:
            tag.quality = quality
            tag.tick = tick
            self._mark(name)

    def simulate(self, name: str, value: ScalarValue, tick: float) -> None:
        tag = self.tags[name]
        tag.simulated = True
        tag.simulated_value = value
        tag.tick = tick
        self._mark(name)

    def simulate_off(self, name: str, tick: float) -> bool:
        tag = self.tags[name]
        if not tag.simulated:
            return False
        tag.simulated = False
        tag.simulated_value = None
        tag.tick = tick
        self._mark(name)
        return True

    def simulated_names(self) -> list[str]:
        return [t.name for t in self.tags.values() if t.simulated]

    def _mark(self, name: str) -> None:
        self._live[name] = None
        self._sample[name] = None

    def mark_all(self) -> None:
        for name in self.tags:
            self._sample[name] = None

    def take_live(self, quiet: Container[str] = ()) -> list[TagValue]:
        """The tags changed since the last take; nothing when only `quiet` tags changed.

        `quiet` tags (the engine's Clock, which changes every scan) still go into samples and
        ride along with other changes, but alone they would make an idle engine send a stored
        message every scan.
        """
        if all(name in quiet for name in self._live):
            self._live.clear()
            return []
        out = [self.tags[n].to_wire() for n in self._live]
        self._live.clear()
        return out

    def take_sample(self) -> list[TagValue]:
        out = [self.tags[n].to_wire() for n in self._sample]
        self._sample.clear()
        self._live.clear()
        return out

    def snapshot(self) -> Mapping[str, ScalarValue]:
        return {name: tag.effective for name, tag in self.tags.items()}
