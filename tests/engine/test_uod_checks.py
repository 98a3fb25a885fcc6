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


def _file(tmp_path: Path, text: str, **replace: str) -> Path:
    for key, value in replace.items():
        text = text.replace(key, value)
    path = tmp_path / "unit.py"
    path.write_text(text)
    return path


def _error(path: Path) -> UodError:
    with pytest.raises(UodError) as info:
        load_uod(path)
    assert "\n" not in str(info.value)
    return info.value


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if needle in line)


# ---- simulated register names ---------------------------------------------------------------


def test_misspelt_model_output_names_the_outputs(tmp_path: Path) -> None:
    path = _file(tmp_path, SIMULATED, REGISTERS='{"PU01": "PU01", "FT01": "FT1"}')
    error = _error(path)
    assert error.line == _line_of(path, "uod.simulated(")
    assert error.message == (
        "simulated register 'FT01' reads 'FT1', which ChromatographyModel does not output "
        "(did you mean 'FT01'?) (outputs: FT01, PT01, UV01, CT01)"
    )


def test_misspelt_register_tag_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, SIMULATED, REGISTERS='{"PU01": "PU01", "FT1": "FT01"}')
    error = _error(path)
    assert error.line == _line_of(path, "uod.simulated(")
    assert error.message == "register 'FT1' has no tag; declare it (did you mean 'FT01'?)"


def test_output_tag_mapped_to_a_model_output(tmp_path: Path) -> None:
    path = _file(tmp_path, SIMULATED, REGISTERS='{"PU01": "PT01", "FT01": "FT01"}')
    error = _error(path)
    assert error.line == _line_of(path, "uod.simulated(")
    assert error.message == (
        "simulated register 'PU01' writes 'PT01', which is an output of ChromatographyModel, "
        "not an input"
    )


# ---- choice codes ---------------------------------------------------------------------------


def test_code_two_on_a_coil(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="Valve", table="coil", address=3, data_type="bool")',
        TAG='uod.choice("Valve", ["Closed", "Open"], safe_value="Closed", '
        'codes={"Closed": 0, "Open": 2})',
    )
    error = _error(path)
    assert error.line == _line_of(path, 'uod.choice("Valve"')
    assert error.message == "tag 'Valve': code 2 for 'Open' does not fit coil 3, which holds 0 or 1"


def test_fractional_code_on_an_integer_register(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="Mode", table="holding", address=7, data_type="uint16")',
        TAG='uod.choice("Mode", ["Auto", "Manual"], safe_value="Auto", '
        'codes={"Auto": 0, "Manual": 1.5})',
    )
    assert _error(path).message == (
        "tag 'Mode': code 1.5 for 'Manual' does not fit holding register 7 (uint16): it would "
        "read back as 2"
    )


def test_negative_code_on_an_unsigned_register(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="Mode", table="input", address=1, data_type="uint16")',
        TAG='uod.reading("Mode", choices=["Off", "Fault"], codes={"Off": 0, "Fault": -1})',
    )
    message = _error(path).message
    assert message.startswith(
        "tag 'Mode': code -1 for 'Fault' does not fit input register 1 (uint16): Mode: -1 does "
        "not fit uint16"
    )


def test_codes_that_fit_load(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="Valve", table="coil", address=3, data_type="bool")',
        TAG='uod.choice("Valve", ["Closed", "Open"], safe_value="Closed", '
        'codes={"Closed": False, "Open": 1})',
    )
    assert load_uod(path).register_tags == ("Valve",)


def test_code_not_among_the_serial_write_choices(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SERIAL,
        EXCHANGE='SerialExchange(tag="Pump", kind="write", '
        'write_choices={"RUN": "RUN\\r\\n", "STOP": "STOP\\r\\n"})',
        TAG='uod.choice("Pump", ["Run", "Stop"], safe_value="Stop", '
        'codes={"Run": "RUN", "Stop": "HALT"})',
    )
    error = _error(path)
    assert error.line == _line_of(path, 'uod.choice("Pump"')
    assert error.message == (
        "tag 'Pump': code 'HALT' for 'Stop' cannot be sent by its serial exchange: Pump: 'HALT' "
        "is not one of ['RUN', 'STOP']"
    )


def test_text_code_on_a_numeric_serial_reading(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SERIAL,
        EXCHANGE='SerialExchange(tag="State", request=b"S?\\r\\n", '
        'pattern=r"(?P<value>\\d+)", value_type="int")',
        TAG='uod.reading("State", choices=["Idle", "Busy"], codes={"Idle": 0, "Busy": "B"})',
    )
    assert _error(path).message == (
        "tag 'State': code 'B' for 'Busy' can never be read by its serial exchange, whose "
        "value_type is 'int'"
    )


# ---- safe values declared twice ---------------------------------------------------------------


def test_safe_values_on_register_and_tag_must_agree(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="Inlet", table="holding", address=2, safe_value=0)',
        TAG='uod.choice("Inlet", ["None", "VA01"], safe_value="VA01", '
        'codes={"None": 0, "VA01": 1})',
    )
    error = _error(path)
    assert error.line == _line_of(path, 'uod.choice("Inlet"')
    assert error.message == (
        "tag 'Inlet': safe_value 'VA01' (code 1) differs from its register's safe_value 0; "
        "declare one (operators would see the tag's, the device would get the register's)"
    )


def test_equal_safe_values_in_another_form_load(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        MODBUS,
        REGISTER='ModbusRegister(tag="PU01", table="holding", address=0, data_type="float32", '
        "safe_value=0)",
        TAG='uod.entry("PU01", unit="%", safe_value=0.0)',
    )
    assert load_uod(path).tag("PU01") is not None


def test_serial_safe_values_must_agree(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SERIAL,
        EXCHANGE='SerialExchange(tag="Speed", kind="write", write_template="SPD {value:.1f}\\r\\n", '
        "safe_value=0.0)",
        TAG='uod.entry("Speed", unit="rpm", safe_value=5.0)',
    )
    assert _error(path).message.startswith(
        "tag 'Speed': safe_value 5.0 differs from its register's safe_value 0.0; declare one"
    )


# ---- the process model's interface ----------------------------------------------------------


def test_good_model_loads(tmp_path: Path) -> None:
    assert load_uod(_file(tmp_path, MODEL, BODY=GOOD_MODEL_BODY)).register_tags == ("LT01",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            GOOD_MODEL_BODY.replace("def outputs(self)", "def output(self)"),
            "process model Tank has no method outputs() (is 'output' meant to be 'outputs'?); "
            "a model needs set_input(name, value), step(dt), outputs()",
        ),
        (
            GOOD_MODEL_BODY.replace("def step(self, dt)", "def step(self)"),
            "process model Tank: step() must be step(dt)",
        ),
        (
            GOOD_MODEL_BODY.replace("def set_input(self, name, value)", "def set_input(self, v)"),
            "process model Tank: set_input(v) must be set_input(name, value)",
        ),
        (
            GOOD_MODEL_BODY.replace('return {"LT01": self.level}', "return [self.level]"),
            "process model Tank: outputs() must return a mapping of output name to value, not list",
        ),
        (
            GOOD_MODEL_BODY + "\n    def __init__(self, volume):\n        self.level = 0.0\n",
            "process model Tank: cannot create it: TypeError: Tank.__init__() missing 1 required "
            "positional argument: 'volume'",
        ),
    ],
    ids=["misnamed", "step-without-dt", "set-input-one-argument", "outputs-list", "init-fails"],
)
def test_model_interface(tmp_path: Path, body: str, message: str) -> None:
    path = _file(tmp_path, MODEL, BODY=body)
    error = _error(path)
    assert error.line == _line_of(path, "uod.simulated(")
    assert error.message == message
