"""Byte budgets: what one connection may hold in memory, within what all of them together may.

Frames held for later (after a sequence gap, in a slow browser's queue, in a pending action) are
counted in bytes, not frames, because a frame can be anywhere between a few bytes and the size
limit of its socket: a count bounds nothing. Sans-I/O: the owners call `take` before they keep
something and `give` when they let it go, and `close` gives back whatever is left.
"""

from __future__ import annotations


class SharedBudget:
    """The limit of all connections of one kind together (one per aggregator)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class ByteBudget:
    """One connection's bytes, counted against its own limit and the shared one."""

    def __init__(self, limit: int, shared: SharedBudget | None = None) -> None:
        self.limit = limit
        self.shared = shared
        self.used = 0

    def fits(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        return self.shared is None or self.shared.used + size <= self.shared.limit

    def take(self, size: int) -> bool:
        """Count `size` more bytes if they fit in both limits; False (nothing counted) if not."""
        if not self.fits(size):
            return False
        self.force(size)
        return True

    def force(self, size: int) -> None:
        """Count bytes that are kept whatever the limits say (they are bounded elsewhere)."""
        self.used += size
        if self.shared is not None:
            self.shared.used += size

    def give(self, size: int) -> None:
        size = min(size, self.used)
        self.used -= size
        if self.shared is not None:
            self.shared.used -= size

    def close(self) -> None:
        """The connection is gone: everything it held is given back."""
        self.give(self.used)
