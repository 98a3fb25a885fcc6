"""Loading a UOD file once in a separate process first, with a deadline.

A UOD is Python, and `load_uod` runs it. In-process, an exception becomes a UodError, but a file
that calls `os._exit()` ends the engine with it (exit code 0, no word said), one that loops or
waits (`while True`, `time.sleep`, a socket, `input()` at the lab PC's console) hangs it for
good, and nothing in-process can stop a loop in C. So the CLI loads the file first in a child
Python (same interpreter, same `sys.path`, same working directory and environment, standard
input from the null device) and loads it itself only when the child said it loads within the
deadline. The child answers on its own pipe, never mixed with what the UOD prints; at the
deadline `faulthandler` writes where the child's code stands onto that pipe and ends the child,
which names the line that loops or waits. A subprocess rather than multiprocessing: no pickling
and no re-import of the parent's `__main__` (a console script on Windows), one code path for
Linux and Windows.

Outside the `engine.uod` package so that starting the child waits for none of that package's
imports (pint, pydantic): the parent imports them while the child loads.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from engine.uod_probe import child_main; child_main(sys.argv[2:])"
)
_GRACE = 2.0  # past the deadline: the child's own watchdog had its chance, it is killed
_FRAME = re.compile(r'File "(.*)", line (\d+) in ')


class UodProbe:
    """One child loading one UOD file; `wait()` raises the UodError loading it gives."""

    def __init__(self, path: str | Path, timeout: float) -> None:
        self.shown = str(path)
        self.timeout = timeout
        deadline = time.time() + timeout
        argv = [sys.executable, "-c", _BOOT, json.dumps(sys.path), self.shown, repr(deadline)]
        self._child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def __enter__(self) -> UodProbe:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Ends the child if it still runs (Ctrl+C, or the parent failed while it loaded)."""
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def wait(self) -> None:
        """Returns once the child loaded the file; raises UodError otherwise."""
        killed = False
        try:
            answer, _ = self._child.communicate(timeout=self.timeout + _GRACE)
        except subprocess.TimeoutExpired as exc:
            self._child.kill()
            killed = True
            answer = exc.stdout or b""
            with contextlib.suppress(subprocess.TimeoutExpired):  # a grandchild holds the pipe
                answer, _ = self._child.communicate(timeout=1.0)
        finally:
            self.close()
        self._raise_from(answer.decode("ascii", "replace"), self._child.returncode, killed)

    def _raise_from(self, answer: str, code: int | None, killed: bool) -> None:
        from engine.uod.errors import UodError

        first = answer.lstrip().split("\n", 1)[0]
        if first.startswith("{"):
            report = json.loads(first)
            if report.get("ok"):
                return
            raise UodError(
                report["message"], filename=self.shown, line=report["line"], more=report["more"]
            )
        if first.startswith("Timeout") or killed:
            raise UodError(
                f"still loading after {self.timeout:g} s: an endless loop, or a call that waits "
                "(sleep, a socket, a device)?",
                filename=self.shown,
                line=_stuck_line(answer, self.shown),
            )
        raise UodError(
            f"ended the process while loading (exit code {code}): "
            "a UOD file must not call os._exit() or crash Python",
            filename=self.shown,
        )


def _stuck_line(dump: str, shown: str) -> int | None:
    """The innermost line of the UOD file in faulthandler's dump (most recent call first)."""
    for match in _FRAME.finditer(dump):
        if match.group(1) == str(Path(shown)):
            return int(match.group(2))
    return None


def child_main(argv: list[str]) -> NoReturn:
    """In the child: load, answer one JSON line on the original stdout, and end at once.

    `os._exit` after the answer: a thread the UOD left running must not keep the child (and the
    parent waiting for its pipe) alive.
    """
    shown, deadline = argv[0], float(argv[1])
    answer = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)  # the UOD's prints (even from C) go where stderr goes, never into the answer
    faulthandler.dump_traceback_later(max(deadline - time.time(), 0.1), exit=True, file=answer)
    from engine.uod.errors import UodError
    from engine.uod.loader import load_uod

    report: dict[str, object] = {"ok": True}
    try:
        load_uod(shown)
    except UodError as exc:
        report = {"message": exc.message, "line": exc.line, "more": exc.more}
    except BaseException as exc:  # load_uod turns the UOD's own into UodError; this is ours
        report = {"message": f"cannot be loaded: {type(exc).__name__}: {exc}", "line": None}
        report["more"] = 0
    faulthandler.cancel_dump_traceback_later()
    answer.write(json.dumps(report) + "\n")
    answer.flush()
    os._exit(0)
