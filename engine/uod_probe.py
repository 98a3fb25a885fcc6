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

Where `os.fork` exists (Linux, macOS) and the process has no other thread yet, the child is a
fork taken once the parent has imported the loader (pydantic, the builder, the unit table): it
shares those imports copy-on-write, so it costs the file's own run (tens of ms) instead of a second
Python starting and importing everything (~0.5 s of CPU and ~44 MB on a busy 2-core PC, which
competed with the parent's own start-up); the deadline then measures the file alone. The fork
resets the signals the parent may have taken over and answers on its own pipe like the
subprocess. Elsewhere (Windows, or another thread already running: forking then could copy a
lock another thread holds) the child is a fresh Python started at once, loading while the
parent imports. Either way every start loads the file in a child first: a cache of files that
loaded before would not catch a file that hangs today (a device it opens, a variable it reads).
Outside the `engine.uod` package so that starting the subprocess child waits for none of that
package's imports.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import NoReturn, TextIO

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
        self._child: subprocess.Popen[bytes] | None = None
        if not can_fork():
            self._spawn()

    def _spawn(self) -> None:
        deadline = time.time() + self.timeout
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
        if self._child is None:
            return
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def wait(self, meanwhile: Callable[[], object] | None = None) -> None:
        """Returns once the child loaded the file; raises UodError otherwise.

        `meanwhile` runs in this process while the child loads (the imports the parent needs
        next: the child's load is tens of ms of wall time the parent would otherwise spend
        waiting, and a lab PC has a second core). It must not start threads or touch the UOD;
        if it raises, the child is ended and the exception goes on."""
        if self._child is None and can_fork():
            self._raise_from(*_forked(self.shown, self.timeout, meanwhile))
            return
        if self._child is None:  # a thread started since: no fork after all
            self._spawn()
        assert self._child is not None
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException:
                self.close()
                raise
        killed = False
        answer: bytes = b""
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


def can_fork() -> bool:
    """Whether the probe may fork: POSIX, and no other thread that could hold a lock."""
    return hasattr(os, "fork") and sys.platform != "win32" and threading.active_count() == 1


def _forked(
    shown: str, timeout: float, meanwhile: Callable[[], object] | None = None
) -> tuple[str, int | None, bool]:
    """Forks the child, runs `meanwhile`, reads the child's answer until the deadline (plus
    grace); (answer, exit code, killed). The answer is complete at its first newline or when
    the pipe closes; a grandchild the file started may keep the pipe open, so the child's end
    also ends the wait."""
    import engine.uod.loader  # noqa: F401  (the child inherits it instead of importing it)
    from engine.lang.units import prepare_unit_registry

    prepare_unit_registry()  # the child and this process each take their copy of one

    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        with contextlib.suppress(Exception):
            stream.flush()
    read_end, write_end = os.pipe()
    deadline = time.time() + timeout
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        try:
            os.close(read_end)
            _isolate()
            _answer(shown, deadline, os.fdopen(write_end, "w", encoding="ascii"))
        finally:
            os._exit(0)
    os.close(write_end)
    end = time.monotonic() + timeout + _GRACE
    try:
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
        answer, status = _read_answer(read_end, pid, end)
    finally:
        os.close(read_end)
    killed = status is None
    if killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert status is not None
    return answer.decode("ascii", "replace"), os.waitstatus_to_exitcode(status), killed


def _read_answer(fd: int, pid: int, end: float) -> tuple[bytes, int | None]:
    """What the child wrote until it ended, and its wait status; None when the deadline passed
    first (the child still runs). A grandchild the file started may hold the pipe open, so the
    child's end, not the pipe's, ends the wait."""
    data = b""
    pipe_open = True
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return data, None
        if not pipe_open:
            time.sleep(min(left, 0.005))
        elif select.select([fd], [], [], min(left, 0.05))[0]:
            chunk = os.read(fd, 65536)
            data += chunk
            pipe_open = bool(chunk)
            if chunk and not (data.lstrip().startswith(b"{") and b"\n" in data):
                continue  # more to come: an answer is one line, a dump several
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            while pipe_open and select.select([fd], [], [], 0)[0]:  # written as it ended
                chunk = os.read(fd, 65536)
                data += chunk
                pipe_open = bool(chunk)
            return data, status


def _isolate() -> None:
    """In a forked child: the parent's signal handlers and console are not the child's."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        signum = getattr(signal, name, None)
        if signum is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # input() meets end of file; what the file prints goes nowhere
        os.dup2(null, fd)


def child_main(argv: list[str]) -> NoReturn:
    """In the subprocess child: load, answer one JSON line on the original stdout, end at once."""
    shown, deadline = argv[0], float(argv[1])
    answer = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)  # the UOD's prints (even from C) go where stderr goes, never into the answer
    _answer(shown, deadline, answer)
    os._exit(0)


def _answer(shown: str, deadline: float, answer: TextIO) -> None:
    """Loads the file and writes one JSON line on `answer`; at the deadline `faulthandler`
    writes where the code stands there instead and ends the process.

    The caller ends with `os._exit`: a thread the UOD left running must not keep the child (and
    the parent waiting for its pipe) alive."""
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
