"""Loading a UOD file: run it, call `create()`, and turn every failure into one clear line."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from engine.uod.builder import UodBuilder
from engine.uod.definition import Uod
from engine.uod.errors import UodError
from protocol.validation import describe


def load_uod(path: str | Path) -> Uod:
    """The validated definition in `path`; raises UodError (file:line: problem) otherwise."""
    file = Path(path)
    shown = str(path)
    if not file.exists():
        raise UodError("UOD file not found", filename=shown)
    if not file.is_file():
        raise UodError("not a file", filename=shown)
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UodError(f"cannot read: {exc}", filename=shown) from None
    try:
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise UodError(f"syntax error: {exc.msg}", filename=shown, line=exc.lineno) from None
    module_name = f"setpoint_uod_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_loader(module_name, loader=None, origin=str(file))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(file)
    sys.modules[module_name] = module  # dataclasses and typing resolve names through it
    try:
        exec(code, module.__dict__)
    except UodError as exc:
        raise exc.located(shown) from None
    except BaseException as exc:  # also SystemExit and KeyboardInterrupt: the file's, not ours
        raise UodError(_problem(exc), filename=shown, line=_line_in(exc, file)) from None
    create = module.__dict__.get("create")
    if not callable(create):
        raise UodError("has no create() function", filename=shown)
    try:
        result = create()
    except UodError as exc:
        raise exc.located(shown) from None
    except BaseException as exc:
        failed = "create() failed: " if isinstance(exc, Exception) and not _asks(exc) else ""
        raise UodError(failed + _problem(exc), filename=shown, line=_line_in(exc, file)) from None
    if isinstance(result, UodBuilder):
        try:
            result = result.build(filename=shown)
        except UodError as exc:
            raise exc.located(shown) from None
        except BaseException as exc:  # the hardware factory and the model are UOD code too
            raise UodError(_problem(exc), filename=shown, line=_line_in(exc, file)) from None
    if not isinstance(result, Uod):
        raise UodError(
            f"create() must return a UOD built with UodBuilder, not {type(result).__name__}",
            filename=shown,
        )
    if result.filename != shown:
        from dataclasses import replace

        result = replace(result, filename=shown)
    return result


def uod_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _problem(exc: BaseException) -> str:
    """What went wrong, said so that a scientist sees what to change in the file."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"called sys.exit({code}) while loading: a UOD file must not end the program"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt while loading (raised by the file, or Ctrl+C)"
    if _asks(exc):
        return "called input(), but a UOD file cannot ask at the keyboard"
    if not isinstance(exc, Exception):
        return f"raised {describe(exc)} while loading"
    return describe(exc)


def _asks(exc: BaseException) -> bool:
    """input() found no keyboard: the CLI loads UOD files with standard input at end of file."""
    return isinstance(exc, EOFError) and str(exc) == "EOF when reading a line"


def _line_in(exc: BaseException, file: Path) -> int | None:
    """Innermost line of the traceback that lies in the UOD file itself."""
    line = None
    target = str(file)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == target:
            line = frame.lineno
    return line
