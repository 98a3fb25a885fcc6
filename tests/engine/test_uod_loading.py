"""Loading UOD files: good ones describe themselves, bad ones give one line naming file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.uod import UodError, load_uod

HEADER = """\
from engine.sim.chromatography import ChromatographyModel
from engine.uod import Axis, Choice, Number, UodBuilder


def pump(cmd, value: float):
    cmd.set("PU01", value)


def create():
    uod = UodBuilder("Bad")
    uod.simulated(ChromatographyModel, registers={"PU01": "PU01", "FT01": "FT01"})
    uod.entry("PU01", unit="%", safe_value=0.0)
    uod.reading("FT01", unit="L/h")
"""


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "unit.py"
    path.write_text(
        header + textwrap.indent(textwrap.dedent(body), "    ") + "    return uod.build()\n"
    )
    return path


def _error(path: Path) -> UodError:
    with pytest.raises(UodError) as info:
        load_uod(path)
    return info.value


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_good_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, 'uod.command("PU01", pump, argument=Number(["%"]))\n')
    uod = load_uod(path)
    assert uod.filename == str(path)
    description = uod.describe()
    assert [c.name for c in description.commands] == ["PU01"]
    assert description.commands[0].argument.units == ["%"]
    assert description.data_log_interval == 1.0


def test_missing_file(tmp_path: Path) -> None:
    error = _error(tmp_path / "nope.py")
    assert str(error) == f"{tmp_path / 'nope.py'}: UOD file not found"


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "unit.py"
    path.write_text("def create():\n    return (\n\nx = = 1\n")
    error = _error(path)
    assert str(error).startswith(f"{path}:")
    assert "syntax error" in str(error)
    assert error.line is not None


def test_register_without_tag(tmp_path: Path) -> None:
    header = HEADER.replace('"FT01": "FT01"}', '"FT01": "FT01", "PT01": "PT01"}')
    path = _write(tmp_path, "", header)
    error = _error(path)
    assert error.line == _line_of(path, "uod.simulated(")
    assert "register 'PT01' has no tag" in str(error)
    assert str(error).startswith(f"{path}:{error.line}: ")


def test_reading_without_register(tmp_path: Path) -> None:
    path = _write(tmp_path, 'uod.reading("UV01", unit="mAU")\n')
    error = _error(path)
    assert error.line == _line_of(path, 'uod.reading("UV01"')


def test_plot_names_unknown_tag_with_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, 'uod.subplot(Axis(label="Flow", tags=["FT1"]))\n')
    error = _error(path)
    assert error.line == _line_of(path, "uod.subplot(")
    assert "unknown tag 'FT1'" in error.message
    assert "did you mean 'FT01'?" in error.message


def test_colour_region_needs_a_categorical_tag(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'uod.subplot(Axis(label="Flow", tags=["FT01"]), color_regions={"FT01": {"a": "red"}})\n',
    )
    assert "not categorical" in _error(path).message


def test_command_function_must_take_the_parsed_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        def no_value(cmd):
            pass
        uod.command("PU01", no_value, argument=Number(["%"]))
        """,
    )
    error = _error(path)
    assert error.line == _line_of(path, 'uod.command("PU01"')
    assert "must take (cmd, value)" in error.message


def test_command_annotation_must_admit_the_parser_output(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        def wants_text(cmd, value: str):
            pass
        uod.command("PU01", wants_text, argument=Number(["%"]))
        """,
    )
    message = _error(path).message
    assert "value: str" in message and "produces float" in message


def test_unknown_unit_in_a_command(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'uod.command("PU01", pump, argument=Number(["furlongs/fortnight", "zz"]))\n'
    )
    assert "unknown unit 'zz'" in _error(path).message


def test_exception_in_create_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, 'raise RuntimeError("no config")\n')
    error = _error(path)
    assert error.line == _line_of(path, "raise RuntimeError")
    assert "RuntimeError: no config" in error.message


def test_builder_misuse_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, 'uod.entry("X", colour="red")\n')
    error = _error(path)
    assert error.line == _line_of(path, 'uod.entry("X"')
    assert "colour" in error.message


def test_create_must_return_a_uod(tmp_path: Path) -> None:
    path = tmp_path / "unit.py"
    path.write_text("def create():\n    return 42\n")
    assert "must return a UOD built with UodBuilder, not int" in _error(path).message


def test_no_create(tmp_path: Path) -> None:
    path = tmp_path / "unit.py"
    path.write_text("x = 1\n")
    assert _error(path).message == "has no create() function"


def test_several_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, 'uod.process_value("Nope")\nuod.x_axis("Nada")\n')
    error = _error(path)
    assert error.line == _line_of(path, 'uod.process_value("Nope")')
    assert str(error).endswith("(and 1 more problem)")


def test_output_register_needs_a_safe_value(tmp_path: Path) -> None:
    header = HEADER.replace(
        'uod.entry("PU01", unit="%", safe_value=0.0)', 'uod.entry("PU01", unit="%")'
    )
    path = _write(tmp_path, "", header)
    assert "needs a safe_value" in _error(path).message


def test_validation_errors_are_one_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "from engine.hw.modbus import ModbusTcp\nModbusTcp(host='', port=502)\n",
    )
    error = _error(path)
    assert "\n" not in str(error)
    assert error.line == _line_of(path, "ModbusTcp(host=''")
    assert "ModbusTcp host: String should have at least 1 character" in error.message


def test_button_pcode_is_analyzed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'uod.command("PU01", pump, argument=Number(["%"]))\n'
        'uod.process_value_choice("PU01", {"Off": "PU01: 0 %", "Max": "PU01: 200 bar"})\n',
    )
    error = _error(path)
    assert error.line == _line_of(path, "uod.process_value_choice(")
    assert "button 'Max'" in error.message


def test_entry_units_must_suit_the_command(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'uod.command("PU01", pump, argument=Number(["%"]))\n'
        'uod.process_value_entry("PU01", command="PU01", units=["L/h"])\n',
    )
    assert "does not accept unit 'L/h'" in _error(path).message


def test_several_hardware_parts_are_combined(tmp_path: Path) -> None:
    header = HEADER.replace(
        '    uod.simulated(ChromatographyModel, registers={"PU01": "PU01", "FT01": "FT01"})\n',
        '    uod.simulated(ChromatographyModel, registers={"PU01": "PU01", "FT01": "FT01"})\n'
        "    from engine.sim.vessel import VesselModel\n"
        '    uod.simulated(VesselModel, registers={"TT01": "TT01"})\n'
        '    uod.reading("TT01", unit="degC")\n',
    )
    uod = load_uod(_write(tmp_path, "", header))
    from engine.clock import FakeClock
    from engine.hw.composite import CompositeHardware

    hw = uod.hardware_factory(FakeClock().monotonic)  # type: ignore[misc]
    assert isinstance(hw, CompositeHardware)
    assert set(uod.register_tags) == {"PU01", "FT01", "TT01"}
    assert "ChromatographyModel" in uod.hardware_description
    assert "VesselModel" in uod.hardware_description
