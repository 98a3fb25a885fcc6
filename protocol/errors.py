"""The single exception type of the protocol package."""

from __future__ import annotations


class ProtocolError(Exception):
    """A frame or a peer broke the protocol; `rule` is the number in protocol/README.md."""

    def __init__(self, message: str, *, rule: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.message}" if self.rule is not None else self.message
