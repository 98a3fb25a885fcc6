"""A UOD file that ends the program, loops or waits: `setpoint-engine` says so in one line and
exits non-zero within its load deadline, for `check`, `simulate` and `run` alike.

The UOD is Python, so these files are what a careless edit produces (a `sys.exit` left from a
script, a `while True` polling a device, an `input()` asking for a port). The elapsed-time
assertions are guards against hanging, not performance thresholds.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.uod import UodError, load_uod
from tests.cli.conftest import EXAMPLES, run_once, tool

GOOD_CREATE = """
from engine.sim.chromatography import ChromatographyModel
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Hostile")
    uod.simulated(ChromatographyModel, registers={"PU01": "PU01"})
    uod.entry("PU01", unit="%", safe_value=0.0)
    return uod.build()
"""

HANG_GUARD = 20.0  # the promise is 10 s; this only keeps a regression from hanging the suite
# --load-timeout for a file that waits, tried in turn until the file got to its waiting line
# before the deadline: the child spends its first seconds importing (pint, pydantic), about 2 s
# on a busy 2-core machine, and a deadline that comes before the file runs names no line.
LOAD_TIMEOUTS = (1, 2, 4, 8, 16)

# name: (source, the line the message names (None: no line), words the message contains)
HOSTILE: dict[str, tuple[str, int | None, str]] = {
    "sys.exit(0)": ("import sys\n\nsys.exit(0)\n", 3, "called sys.exit(0) while loading"),
    "sys.exit(3) in create": (
        "import sys\n\n\ndef create():\n    sys.exit(3)\n",
        5,
        "called sys.exit(3) while loading",
    ),
    "os._exit(0)": (
        "import os\n\n\ndef create():\n    os._exit(0)\n",
        None,
        "ended the process while loading (exit code 0)",
    ),
    "KeyboardInterrupt": (
        "x = 1\nraise KeyboardInterrupt\n",
        2,
        "KeyboardInterrupt while loading",
    ),
    "input()": (
        'def create():\n    port = input("Port? ")\n',
        2,
        "called input(), but a UOD file cannot ask at the keyboard",
    ),
}

LOOPS: dict[str, tuple[str, int]] = {
    "while True": ("n = 0\nwhile True: n += 1  # one line: where it stands is line 2\n", 2),
    "time.sleep": ("import time\n\n\ndef create():\n    time.sleep(10**6)\n", 5),
    "socket accept": (
        "import socket\n\nserver = socket.socket()\nserver.bind(('127.0.0.1', 0))\n"
        "server.listen()\nserver.accept()\n",
        6,
    ),
}


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "unit.py"
    path.write_text(source)
    return path


def check(path: Path, *options: str) -> tuple[str, float, int, str]:
    """stderr, seconds taken, exit code and stdout of `check`, its stdin holding an answer."""
    began = time.monotonic()
    done = run_once(
        [tool("setpoint-engine"), "check", "--uod", str(path), *options],
        input="COM3\n",  # there for the taking: the UOD must still not read it
    )
    return done.stderr, time.monotonic() - began, done.returncode, done.stdout


def run_until_it_waits(
    tmp_path: Path, name: str, command: Callable[[Path, str], list[str]]
) -> tuple[subprocess.CompletedProcess[str], Path, int, str]:
    """Runs `command(path, load_timeout)` on LOOPS[name] with each of LOAD_TIMEOUTS until the
    file got to the line that waits (it touches a marker on that very line, so the line the
    message names is the same): what it then reports is what the test checks, however slow the
    machine. Returns the run, the file, that line and the --load-timeout used."""
    source, line = LOOPS[name]
    marker = tmp_path / "reached"
    lines = source.splitlines(keepends=True)
    waits = lines[line - 1]
    indent = waits[: len(waits) - len(waits.lstrip())]
    lines[line - 1] = f"{indent}open({str(marker)!r}, 'w').close(); {waits.lstrip()}"
    path = write(tmp_path, "".join(lines))
    for timeout in LOAD_TIMEOUTS:
        marker.unlink(missing_ok=True)
        began = time.monotonic()
        done = run_once(command(path, f"{timeout:g}"), input="COM3\n")
        assert time.monotonic() - began < timeout + HANG_GUARD
        if marker.exists():
            return done, path, line, f"{timeout:g}"
    pytest.fail(f"{name}: line {line} not reached within {LOAD_TIMEOUTS[-1]} s: {done.stderr}")


def expected(path: Path, line: int | None, words: str) -> str:
    where = f"{path}:{line}" if line is not None else str(path)
    return f"setpoint-engine: error: {where}: {words}"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_check_names_a_file_that_ends_the_program(tmp_path: Path, name: str) -> None:
    source, line, words = HOSTILE[name]
    path = write(tmp_path, source)
    stderr, seconds, code, stdout = check(path)
    assert code == 2
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(expected(path, line, words)), stderr
    assert seconds < HANG_GUARD


def test_check_gives_up_on_an_endless_loop_by_default(tmp_path: Path) -> None:
    source, line = LOOPS["while True"]
    path = write(tmp_path, source)
    stderr, seconds, code, stdout = check(path)
    assert code == 2
    assert stdout == ""
    assert stderr == (
        expected(path, line, "still loading after 8 s: an endless loop, or a call that waits ")
        + "(sleep, a socket, a device)?\n"
    )
    assert seconds < HANG_GUARD


@pytest.mark.parametrize("name", ["time.sleep", "socket accept"])
def test_check_names_the_line_that_waits(tmp_path: Path, name: str) -> None:
    def check_with(path: Path, timeout: str) -> list[str]:
        return [tool("setpoint-engine"), "check", "--uod", str(path), "--load-timeout", timeout]

    done, path, line, timeout = run_until_it_waits(tmp_path, name, check_with)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(expected(path, line, f"still loading after {timeout} s"))


def test_what_a_good_file_prints_while_loading_shows_once(tmp_path: Path) -> None:
    path = write(tmp_path, 'print("loading the unit")\n' + GOOD_CREATE)
    stderr, _, code, stdout = check(path)
    assert (code, stderr) == (0, "")
    assert stdout.splitlines() == ["loading the unit", f"{path}: OK (15 tags, 0 commands)"]


def test_simulate_and_run_refuse_at_start_up(tmp_path: Path) -> None:
    exits = write(tmp_path, HOSTILE["os._exit(0)"][0])
    began = time.monotonic()
    done = run_once(
        [tool("setpoint-engine"), "run", "--uod", str(exits), "--data-dir", str(tmp_path / "d")]
    )
    assert done.returncode == 2
    assert done.stderr == (
        expected(exits, None, "ended the process while loading (exit code 0): ")
        + "a UOD file must not call os._exit() or crash Python\n"
    )
    assert time.monotonic() - began < HANG_GUARD
    method = str(EXAMPLES / "chromatography.pcode")

    def simulate(path: Path, timeout: str) -> list[str]:
        uod = ["--uod", str(path), "--load-timeout", timeout]
        return [tool("setpoint-engine"), "simulate", *uod, "--method", method]

    done, loops, line, timeout = run_until_it_waits(tmp_path, "time.sleep", simulate)
    assert done.returncode == 2
    assert done.stderr.startswith(expected(loops, line, f"still loading after {timeout} s"))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("raise SystemExit", "called sys.exit() while loading"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt while loading"),
        ("raise GeneratorExit('done')", "raised GeneratorExit: done while loading"),
    ],
)
def test_loading_in_process_turns_base_exceptions_into_one_line(
    tmp_path: Path, body: str, words: str
) -> None:
    """Also what the hardware's own code raises while the UOD is built (a model's __init__)."""
    source = GOOD_CREATE.replace(
        "from engine.uod import UodBuilder\n",
        "from engine.uod import UodBuilder\n\n\nclass Model(ChromatographyModel):\n"
        f"    def __init__(self):\n        {body}\n",
    ).replace("uod.simulated(ChromatographyModel", "uod.simulated(Model")
    path = write(tmp_path, source)
    with pytest.raises(UodError) as info:
        load_uod(path)
    line = source.splitlines().index("        " + body) + 1
    assert str(info.value).startswith(f"{path}:{line}: {words}")
