"""`setpoint-engine check` refuses what would otherwise only show on the plant, in one line that
names the file and line: run as a person would, through the installed console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import run_once, tool
from tests.engine.test_uod_checks import GOOD_MODEL_BODY, MODBUS, MODEL, SIMULATED

CASES = {
    "misspelt-model-output": (
        SIMULATED.replace("REGISTERS", '{"PU01": "PU01", "FT01": "FT1"}'),
        "uod.simulated(",
        "simulated register 'FT01' reads 'FT1', which ChromatographyModel does not output (did "
        "you mean 'FT01'?) (outputs: FT01, PT01, UV01, CT01)",
    ),
    "code-on-a-coil": (
        MODBUS.replace(
            "REGISTER", 'ModbusRegister(tag="Valve", table="coil", address=3, data_type="bool")'
        ).replace(
            "TAG",
            'uod.choice("Valve", ["Closed", "Open"], safe_value="Closed", '
            'codes={"Closed": 0, "Open": 2})',
        ),
        'uod.choice("Valve"',
        "tag 'Valve': code 2 for 'Open' does not fit coil 3, which holds 0 or 1",
    ),
    "two-safe-values": (
        MODBUS.replace(
            "REGISTER", 'ModbusRegister(tag="Inlet", table="holding", address=2, safe_value=0)'
        ).replace(
            "TAG",
            'uod.choice("Inlet", ["None", "VA01"], safe_value="VA01", '
            'codes={"None": 0, "VA01": 1})',
        ),
        'uod.choice("Inlet"',
        "tag 'Inlet': safe_value 'VA01' (code 1) differs from its register's safe_value 0; "
        "declare one (operators would see the tag's, the device would get the register's)",
    ),
    "model-interface": (
        MODEL.replace("BODY", GOOD_MODEL_BODY.replace("def step(self, dt)", "def step(self)")),
        "uod.simulated(",
        "process model Tank: step() must be step(dt)",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_check_refuses_with_one_line(tmp_path: Path, case: str) -> None:
    source, needle, message = CASES[case]
    path = tmp_path / "unit.py"
    path.write_text(source)
    line = next(n for n, text in enumerate(source.splitlines(), start=1) if needle in text)
    done = run_once([tool("setpoint-engine"), "check", "--uod", str(path)])
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"setpoint-engine: error: {path}:{line}: {message}\n"
