"""The checks that look inside the hardware: simulated names, choice codes, safe values declared
twice, and the process model's interface. Each broken file gives one line naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.uod import UodError, load_uod

SIMULATED = """\
from engine.sim.chromatography import ChromatographyModel
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Checks")
    uod.simulated(ChromatographyModel, registers=REGISTERS)
    uod.entry("PU01", unit="%", safe_value=0.0)
    uod.reading("FT01", unit="L/h")
    return uod.build()
"""

MODBUS = """\
from engine.hw.modbus import ModbusTcp
from engine.hw.modbus_codec import ModbusRegister
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Checks")
    uod.modbus(ModbusTcp(host="127.0.0.1", port=5020), [REGISTER])
    TAG
    return uod.build()
"""

SERIAL = """\
from engine.hw.serial_line import SerialExchange, SerialPort
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Checks")
    uod.serial(SerialPort(url="loop://"), [EXCHANGE])
    TAG
    return uod.build()
"""

MODEL = """\
from engine.uod import UodBuilder


class Tank:
    def __init__(self):
        self.level = 0.0

BODY

def create():
    uod = UodBuilder("Checks")
    uod.simulated(Tank, registers={"LT01": "LT01"})
    uod.reading("LT01", unit="L")
    return uod.build()
"""

GOOD_MODEL_BODY = """\
    def set_input(self, name, value):
        raise ValueError(f"unknown input {name!r}")

    def step(self, dt):
        self.level += dt

    def outputs(self):
        return {"LT01": self.level}
"""


def _modbus(register: str, tag: str) -> str:
    return MODBUS.replace("REGISTER", register).replace("TAG", tag)


def _serial(exchange: str, tag: str) -> str:
    return SERIAL.replace("EXCHANGE", exchange).replace("TAG", tag)


def _model(body: str) -> str:
    return MODEL.replace("BODY", body)


REFUSED: dict[str, tuple[str, str, str]] = {
    # id: (UOD source, text on the line the error must name, the message)
    "misspelt-model-output": (
        SIMULATED.replace("REGISTERS", '{"PU01": "PU01", "FT01": "FT1"}'),
        "uod.simulated(",
        "simulated register 'FT01' reads 'FT1', which ChromatographyModel does not output "
        "(did you mean 'FT01'?) (outputs: FT01, PT01, UV01, CT01)",
    ),
    "misspelt-register-tag": (
        SIMULATED.replace("REGISTERS", '{"PU01": "PU01", "FT1": "FT01"}'),
        "uod.simulated(",
        "register 'FT1' has no tag; declare it (did you mean 'FT01'?)",
    ),
    "output-on-a-model-output": (
        SIMULATED.replace("REGISTERS", '{"PU01": "PT01", "FT01": "FT01"}'),
        "uod.simulated(",
        "simulated register 'PU01' writes 'PT01', which is an output of ChromatographyModel, "
        "not an input",
    ),
    "code-two-on-a-coil": (
        _modbus(
            'ModbusRegister(tag="Valve", table="coil", address=3, data_type="bool")',
            'uod.choice("Valve", ["Closed", "Open"], safe_value="Closed", '
            'codes={"Closed": 0, "Open": 2})',
        ),
        'uod.choice("Valve"',
        "tag 'Valve': code 2 for 'Open' does not fit coil 3, which holds 0 or 1",
    ),
    "fractional-code": (
        _modbus(
            'ModbusRegister(tag="Mode", table="holding", address=7, data_type="uint16")',
            'uod.choice("Mode", ["Auto", "Manual"], safe_value="Auto", '
            'codes={"Auto": 0, "Manual": 1.5})',
        ),
        'uod.choice("Mode"',
        "tag 'Mode': code 1.5 for 'Manual' does not fit holding register 7 (uint16): it would "
        "read back as 2",
    ),
    "negative-code-unsigned": (
        _modbus(
            'ModbusRegister(tag="Mode", table="input", address=1, data_type="uint16")',
            'uod.reading("Mode", choices=["Off", "Fault"], codes={"Off": 0, "Fault": -1})',
        ),
        'uod.reading("Mode"',
        "tag 'Mode': code -1 for 'Fault' does not fit input register 1 (uint16): Mode: -1 does "
        "not fit uint16 (argument out of range)",
    ),
    "code-not-a-write-choice": (
        _serial(
            'SerialExchange(tag="Pump", kind="write", '
            'write_choices={"RUN": "RUN\\r\\n", "STOP": "STOP\\r\\n"})',
            'uod.choice("Pump", ["Run", "Stop"], safe_value="Stop", '
            'codes={"Run": "RUN", "Stop": "HALT"})',
        ),
        'uod.choice("Pump"',
        "tag 'Pump': code 'HALT' for 'Stop' cannot be sent by its serial exchange: Pump: 'HALT' "
        "is not one of ['RUN', 'STOP']",
    ),
    "text-code-numeric-reply": (
        _serial(
            'SerialExchange(tag="State", request=b"S?\\r\\n", '
            'pattern=r"(?P<value>\\d+)", value_type="int")',
            'uod.reading("State", choices=["Idle", "Busy"], codes={"Idle": 0, "Busy": "B"})',
        ),
        'uod.reading("State"',
        "tag 'State': code 'B' for 'Busy' can never be read by its serial exchange, whose "
        "value_type is 'int'",
    ),
    "two-safe-values": (
        _modbus(
            'ModbusRegister(tag="Inlet", table="holding", address=2, safe_value=0)',
            'uod.choice("Inlet", ["None", "VA01"], safe_value="VA01", '
            'codes={"None": 0, "VA01": 1})',
        ),
        'uod.choice("Inlet"',
        "tag 'Inlet': safe_value 'VA01' (code 1) differs from its register's safe_value 0; "
        "declare one (operators would see the tag's, the device would get the register's)",
    ),
    "two-serial-safe-values": (
        _serial(
            'SerialExchange(tag="Speed", kind="write", write_template="SPD {value:.1f}", '
            "safe_value=0.0)",
            'uod.entry("Speed", unit="rpm", safe_value=5.0)',
        ),
        'uod.entry("Speed"',
        "tag 'Speed': safe_value 5.0 differs from its register's safe_value 0.0; declare one "
        "(operators would see the tag's, the device would get the register's)",
    ),
    "model-method-misnamed": (
        _model(GOOD_MODEL_BODY.replace("def outputs(self)", "def output(self)")),
        "uod.simulated(",
        "process model Tank has no method outputs() (is 'output' meant to be 'outputs'?); "
        "a model needs set_input(name, value), step(dt), outputs()",
    ),
    "model-step-without-dt": (
        _model(GOOD_MODEL_BODY.replace("def step(self, dt)", "def step(self)")),
        "uod.simulated(",
        "process model Tank: step() must be step(dt)",
    ),
    "model-set-input-one-argument": (
        _model(
            GOOD_MODEL_BODY.replace("def set_input(self, name, value)", "def set_input(self, v)")
        ),
        "uod.simulated(",
        "process model Tank: set_input(v) must be set_input(name, value)",
    ),
    "model-outputs-a-list": (
        _model(GOOD_MODEL_BODY.replace('return {"LT01": self.level}', "return [self.level]")),
        "uod.simulated(",
        "process model Tank: outputs() must return a mapping of output name to value, not list",
    ),
    "model-cannot-be-created": (
        _model(GOOD_MODEL_BODY + "\n    def __init__(self, volume):\n        self.level = 0.0\n"),
        "uod.simulated(",
        "process model Tank: cannot create it: TypeError: Tank.__init__() missing 1 required "
        "positional argument: 'volume'",
    ),
}

LOADS: dict[str, str] = {
    "codes-that-fit-a-coil": _modbus(
        'ModbusRegister(tag="Valve", table="coil", address=3, data_type="bool")',
        'uod.choice("Valve", ["Closed", "Open"], safe_value="Closed", '
        'codes={"Closed": False, "Open": 1})',
    ),
    "equal-safe-values-in-another-form": _modbus(
        'ModbusRegister(tag="PU01", table="holding", address=0, data_type="float32", safe_value=0)',
        'uod.entry("PU01", unit="%", safe_value=0.0)',
    ),
    "good-model": _model(GOOD_MODEL_BODY),
}


def line_of(source: str, needle: str) -> int:
    lines = source.splitlines()
    return next(n for n, line in enumerate(lines, start=1) if needle in line)


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_with_one_line_naming_the_line(tmp_path: Path, case: str) -> None:
    source, needle, message = REFUSED[case]
    path = tmp_path / "unit.py"
    path.write_text(source)
    with pytest.raises(UodError) as info:
        load_uod(path)
    assert (info.value.line, info.value.message) == (line_of(source, needle), message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", LOADS, ids=list(LOADS))
def test_loads(tmp_path: Path, case: str) -> None:
    path = tmp_path / "unit.py"
    path.write_text(LOADS[case])
    assert len(load_uod(path).register_tags) == 1
