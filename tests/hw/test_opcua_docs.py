"""The OPC UA example in docs/uod.md is a UOD that loads, and declares what the text says."""

from __future__ import annotations

import re
from pathlib import Path

from engine.hw.opcua import OpcUaHardware
from engine.uod import load_uod

DOC = Path(__file__).resolve().parents[2] / "docs" / "uod.md"


def test_the_documented_opcua_uod_loads(tmp_path: Path) -> None:
    section = DOC.read_text().split("## OPC UA instruments", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    path = tmp_path / "skid.py"
    path.write_text(code.group(1))
    uod = load_uod(path)
    assert uod.hardware_description == "Skid"
    assert uod.hardware_factory is not None
    hw = uod.hardware_factory(lambda: 0.0)
    assert isinstance(hw, OpcUaHardware)
    assert hw.connection.security == "SignAndEncrypt"
    assert hw.units == {
        "PU01": "%",
        "Inlet": None,
        "FT01": "L/h",
        "PT01": "bar",
        "Pump Running": None,
    }
    assert hw.sampling == uod.scan_interval
