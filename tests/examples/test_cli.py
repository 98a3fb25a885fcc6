"""The engine command line: help, clear one-line errors, check output, run with signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "uod_examples"
CHROM = str(EXAMPLES / "chromatography.py")


def test_every_option_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_missing_uod(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _one_line_error(capsys, ["check", "--uod", str(tmp_path / "x.py")])
    assert line == f"setpoint-engine: error: {tmp_path / 'x.py'}: UOD file not found"


def test_broken_uod_names_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(
        "from engine.uod import UodBuilder\n\ndef create():\n    return UodBuilder('x').nope()\n"
    )
    line = _one_line_error(capsys, ["simulate", "--uod", str(path), "--method", str(path)])
    assert f"{path}:4: " in line and "nope" in line


def test_missing_method(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _one_line_error(capsys, ["simulate", "--uod", CHROM, "--method", str(tmp_path / "m")])
    assert "method file not found" in line


def test_method_with_errors_does_not_simulate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    method = tmp_path / "bad.pcode"
    method.write_text("Inlet: VA07\n")
    line = _one_line_error(capsys, ["simulate", "--uod", CHROM, "--method", str(method)])
    assert "errors" in line


def test_check_prints_findings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    method = tmp_path / "m.pcode"
    method.write_text("Mark: a\nInlte: VA01\nWatch: UV01 > 5 bar\n    Mark: b\n")
    code = main(["check", "--uod", CHROM, "--method", str(method)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert any(
        line.startswith(f"{method}:2:1: error: ") and "(did you mean Inlet?)" in line
        for line in out
    ), out
    assert any(line.startswith(f"{method}:3:") and ": error: " in line for line in out), out


def test_check_uod_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--uod", CHROM]) == 0
    assert "OK" in capsys.readouterr().out


def test_simulate_for_ends_early(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--uod",
            CHROM,
            "--method",
            str(EXAMPLES / "chromatography.pcode"),
            "--json",
            "--for",
            "10",
        ]
    )
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["run_time"] <= 10.0
    assert not any(e["kind"] == "state" and e["text"] == "Stopped" for e in events)


def test_bad_speed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--uod", CHROM, "--method", CHROM, "--speed", "fast"])
    assert info.value.code == 2
    assert "must be a number or 'max'" in capsys.readouterr().err


def test_run_standalone_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            "--uod",
            CHROM,
            "--method",
            str(EXAMPLES / "chromatography.pcode"),
            "--start",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "Flow: 60 L/h" in line:
                break
        assert any("System State" in s or "started" in s for s in seen), seen
        os.kill(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "stopped (Stop)" in out
        assert "System State: Stopped" in out
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_simulate_ends_with_exit_1_when_an_error_pauses_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uod = tmp_path / "unit.py"
    uod.write_text(
        (EXAMPLES / "chromatography.py")
        .read_text()
        .replace(
            '    uod.command("Inlet", set_inlet',
            '    uod.command("Boom", lambda cmd: 1 / 0)\n    uod.command("Inlet", set_inlet',
        )
    )
    method = tmp_path / "m.pcode"
    method.write_text("Mark: a\nBoom\nMark: b\n")
    code = main(["simulate", "--uod", str(uod), "--method", str(method), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "ZeroDivisionError" in captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[-1]["kind"] in ("state", "error", "command")
    assert any(e["kind"] == "state" and e["text"] == "Paused" for e in events)
