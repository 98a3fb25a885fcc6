"""How the engine words an exception for its error log: one line, with the place in the user's
own code (a UOD file) rather than in the engine, because the reader is the UOD's author."""

from __future__ import annotations

import hashlib
import traceback


def plain(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "/engine/" not in frame.filename or "uod_examples" in frame.filename:
            where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
            break
    text = str(exc)
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def text_hash(text: str) -> str:
    """The method hash the engine registers with (the aggregator compares it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
