"""The one error a broken UOD file produces."""

from __future__ import annotations


class UodError(Exception):
    """A UOD that cannot be used; `str()` is the one line shown to the user (file:line: problem)."""

    def __init__(
        self, message: str, *, filename: str = "", line: int | None = None, more: int = 0
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.more = more
        super().__init__(self.format())

    def format(self) -> str:
        where = self.filename or "UOD"
        if self.line is not None:
            where = f"{where}:{self.line}"
        extra = (
            f" (and {self.more} more problem{'s' if self.more > 1 else ''})" if self.more else ""
        )
        return f"{where}: {self.message}{extra}"

    def located(self, filename: str, line: int | None = None) -> UodError:
        return UodError(
            self.message,
            filename=filename,
            line=self.line if line is None else line,
            more=self.more,
        )
