"""Ready-made functions for calculated tags (`uod.calculated(name, function, unit=...)`).

Some conditions a method needs depend on history, which a P-code condition cannot express: "the
temperature has stayed within 36.5-37.5 degC for 10 minutes" needs to know since when it has been
in the band. A calculated tag can keep that state and expose it as a plain number, so the method
stays one line (`Watch: TT01 steady > 10 min`; docs/pcode.md shows the recipe).

The functions here are pure apart from the state they keep between calls; time comes from the
`Clock` tag in the values the engine passes each scan, never from a clock of their own. A UOD may
import this module; it imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping

Value = float | int | str | bool | None


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TimeInBand:
    """Seconds `tag` has stayed within [low, high] (its own unit, bounds included) without a
    break; 0.0 while it is outside the band or has no numeric value. Declare the calculated tag
    with `unit="s"` so that conditions may compare it with any time (`> 10 min`)."""

    def __init__(self, tag: str, low: float, high: float, *, clock: str = "Clock") -> None:
        if not tag:
            raise ValueError("time_in_band: the tag name is empty")
        if not low <= high:
            raise ValueError(f"time_in_band({tag!r}): low {low} is above high {high}")
        self.tag = tag
        self.low = float(low)
        self.high = float(high)
        self.clock = clock
        self._since: float | None = None

    def __call__(self, values: Mapping[str, Value]) -> float:
        if self.tag not in values:
            raise ValueError(f"time_in_band: no tag {self.tag!r}")
        now = _number(values.get(self.clock))
        if now is None:
            raise ValueError(f"time_in_band({self.tag!r}): no numeric {self.clock!r} tag")
        value = _number(values[self.tag])
        if value is None or not self.low <= value <= self.high:
            self._since = None
            return 0.0
        if self._since is None or now < self._since:
            self._since = now
        return round(now - self._since, 3)


def time_in_band(tag: str, low: float, high: float, *, clock: str = "Clock") -> TimeInBand:
    """A calculated-tag function: how long `tag` has been within [low, high], in seconds."""
    return TimeInBand(tag, low, high, clock=clock)
