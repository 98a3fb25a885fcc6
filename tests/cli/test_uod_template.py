"""The real-hardware template works as docs/uod.md promises: `check` passes against the plant and
the model, `simulate` runs its method on the model, the docs show the very same file, and a PLC
that cannot be reached is named as the user's own device, not as the project's simulator."""

from __future__ import annotations

import os
import re

import pytest

from engine.cli import hardware_advice
from engine.clock import FakeClock
from engine.hw.composite import CompositeHardware
from engine.hw.modbus import ModbusHardware
from engine.uod import load_uod
from tests.cli.conftest import EXAMPLES, REPO, run_once, tool

TEMPLATE = EXAMPLES / "real_hardware_template.py"
METHOD = EXAMPLES / "real_hardware_template.pcode"


def _env(simulate: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETPOINT_")}
    if simulate:
        env["SETPOINT_SIMULATE"] = "1"
    return env


@pytest.mark.parametrize("simulate", [False, True], ids=["plant", "model"])
def test_check_passes_in_both_modes(simulate: bool) -> None:
    done = run_once(
        [tool("setpoint-engine"), "check", "--uod", str(TEMPLATE), "--method", str(METHOD)],
        env=_env(simulate),
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{METHOD}: OK (no findings)\n"


def test_simulate_runs_the_method_on_the_model() -> None:
    done = run_once(
        [
            tool("setpoint-engine"),
            "simulate",
            "--uod",
            str(TEMPLATE),
            "--method",
            str(METHOD),
            "--speed",
            "max",
        ],
        env=_env(simulate=True),
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, "")
    marks = re.findall(r"^\s*([\d.]+) s\s+mark\s+(\w+)$", done.stdout, re.MULTILINE)
    assert [mark for _, mark in marks] == ["Warm", "Done"]
    warm, end = (float(time) for time, _ in marks)
    assert 10 < warm < 60  # the model heats the stirred vessel past 30 degC within a minute
    assert end == pytest.approx(warm + 120, abs=0.5)  # then feeds for two minutes
    assert done.stdout.rstrip().endswith("state   Stopped")


def test_the_docs_show_the_template_verbatim() -> None:
    docs = (REPO / "docs" / "uod.md").read_text(encoding="utf-8")
    section = docs.split("\n## A complete real-hardware example\n", 1)[1]
    block = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block is not None
    assert block.group(1) == TEMPLATE.read_text(encoding="utf-8")


def _plc(monkeypatch: pytest.MonkeyPatch, host: str) -> ModbusHardware:
    for name in [k for k in os.environ if k.startswith("SETPOINT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SETPOINT_PLC_HOST", host)
    monkeypatch.setenv("SETPOINT_PLC_PORT", "1502")
    uod = load_uod(TEMPLATE)
    assert uod.hardware_factory is not None
    hardware = uod.hardware_factory(FakeClock().monotonic)
    assert isinstance(hardware, CompositeHardware)
    plc = hardware.parts[0]
    assert isinstance(plc, ModbusHardware)
    return plc


@pytest.mark.parametrize("host", ["10.20.30.40", "127.0.0.1"])
def test_unreachable_plc_is_named_as_the_users_device(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    advice = hardware_advice(_plc(monkeypatch, host))
    assert advice == (
        f"cannot connect to the Modbus device 'Bioreactor PLC' at {host}:1502 (from "
        "SETPOINT_PLC_HOST, SETPOINT_PLC_PORT); check that it is on and reachable from this PC"
    )
