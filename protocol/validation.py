"""One formatter for pydantic's error lists, shared by every layer that validates input.

Engine (UOD files), protocol (frames) and aggregator (API bodies, /ws frames) all turn a
`ValidationError` into one line a person can act on; they differ only in how they name the
place (a prefix, or skipping a union tag level), so that is a parameter, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """The first error of a ValidationError: where, what, and how many more there were."""

    field: str | None
    message: str
    kind: str
    more: int

    def line(self, default_field: str | None = None) -> str:
        """`field: message (and N more)`; without a field, just the message."""
        where = self.field or default_field
        suffix = f" (and {self.more} more)" if self.more else ""
        return f"{where}: {self.message}{suffix}" if where else f"{self.message}{suffix}"


def first_problem(exc: ValidationError, *, prefix: str = "", skip: int = 0) -> Problem:
    """`skip` drops leading location parts (a discriminated union's tag); `prefix` is put
    before the dotted location (e.g. "query." for query parameters)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    if skip and len(loc) > skip:
        loc = loc[skip:]
    where = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or None)
    return Problem(where, str(first["msg"]), str(first["type"]), len(errors) - 1)


def describe(exc: BaseException) -> str:
    """One line for any exception; pydantic's multi-line reports become `Model field: msg`."""
    if isinstance(exc, ValidationError):
        return f"{exc.title} {first_problem(exc).line()}".replace(" :", ":")
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
