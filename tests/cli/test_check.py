"""`setpoint-engine check` refuses what would otherwise only show on the plant, in one line that
names the file and line: run as a person would, through the installed console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import run_once, tool
from tests.engine.test_uod_checks import REFUSED, line_of

# One case of each kind; tests/engine/test_uod_checks.py has them all.
CASES = [
    "misspelt-model-output",
    "code-two-on-a-coil",
    "two-safe-values",
    "model-step-without-dt",
]


@pytest.mark.parametrize("case", CASES)
def test_check_refuses_with_one_line(tmp_path: Path, case: str) -> None:
    source, needle, message = REFUSED[case]
    path = tmp_path / "unit.py"
    path.write_text(source)
    done = run_once([tool("setpoint-engine"), "check", "--uod", str(path)])
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"setpoint-engine: error: {path}:{line_of(source, needle)}: {message}\n"
