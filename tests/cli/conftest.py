"""Run the real console scripts as a person at a terminal would, and read what they print.

Every process is started in its own session and stopped by its PID in the fixture's teardown.
Output is read by threads into queues, so a test waits for a line with a deadline instead of
sleeping and hoping.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from tests.net import free_port as free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "uod_examples"


def tool(name: str) -> str:
    """The console script installed beside this Python (the project's virtual environment)."""
    candidate = Path(sys.executable).with_name(name)
    if not candidate.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable} (run `make setup`)")
    return str(candidate)


def run_once(
    argv: Sequence[str], timeout: float = 30.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """A command that should end by itself (a mistake reported at start-up)."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


class Running:
    """A long-running command whose stdout and stderr lines are collected as they come."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ):
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._readers: list[threading.Thread] = []
        for name, stream, into in (
            ("stdout", self.proc.stdout, self.stdout),
            ("stderr", self.proc.stderr, self.stderr),
        ):
            assert stream is not None
            reader = threading.Thread(target=self._read, args=(name, stream, into), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, name: str, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            self._lines.put((name, line.rstrip("\n")))

    def wait_line(self, pattern: str, stream: str = "stderr", timeout: float = 15.0) -> str:
        """The first line (already seen or still to come) on `stream` matching `pattern`."""
        regex = re.compile(pattern)
        seen = self.stdout if stream == "stdout" else self.stderr
        for line in list(seen):
            if regex.search(line):
                return line
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                name, line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    break
                continue
            if name == stream and regex.search(line):
                return line
        raise AssertionError(
            f"no line matching {pattern!r} on {stream} within {timeout} s; "
            f"exit code {self.proc.poll()}; stderr so far: {self.stderr!r}"
        )

    def wait_count(
        self, needle: str, count: int, stream: str = "stderr", timeout: float = 15.0
    ) -> None:
        """Until `count` lines on `stream` contain `needle` (e.g. a server logging each retry)."""
        seen = self.stdout if stream == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        while sum(needle in line for line in list(seen)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} lines with {needle!r} in {timeout} s")
            time.sleep(0.05)

    def interrupt(self, timeout: float = 20.0) -> int:
        """Ctrl-C, as a person would; returns the exit code once the output is read."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)  # to the end of its output
        return code

    def kill(self) -> None:
        """Stop at once (no 10 s outbox flush) and read what was printed up to here."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    """Start commands; every one still running at teardown is killed by its PID."""
    started: list[Running] = []

    def _start(
        argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Running:
        running = Running(argv, env, cwd)
        started.append(running)
        return running

    try:
        yield _start
    finally:
        for running in reversed(started):
            running.kill()


class Listener:
    """A TCP port that accepts connections and closes them at once, counting them: a peer that
    is there but is not what the client expects, so its retries can be counted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()
            self.accepted += 1

    def wait_accepted(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.accepted < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.accepted} connection attempts in {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener()
    try:
        yield listening
    finally:
        listening.close()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])
