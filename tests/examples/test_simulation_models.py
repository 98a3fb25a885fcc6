"""Every example unit names a process model, so every example method simulates to Stopped, also
those whose hardware is a device (Modbus, serial, OPC UA); a unit without one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.model_run import NoProcessModel, for_simulation
from engine.uod.loader import load_uod

EXAMPLES = Path(__file__).resolve().parents[2] / "uod_examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.pcode") if (EXAMPLES / f"{p.stem}.py").exists())
MARKS = {
    "chromatography_modbus": ["Load", "Elution"],
    "chromatography_opcua": ["Load", "Elution"],
    "dosing": ["Nearly there", "Dosed"],
    "real_hardware_template": ["Warm", "Done"],
}

NO_MODEL = """\
from engine.hw.modbus import ModbusTcp
from engine.hw.modbus_codec import ModbusRegister
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Plant")
    uod.modbus(
        ModbusTcp(host="127.0.0.1", port=1),
        [ModbusRegister(tag="PU01", table="holding", address=0, data_type="float32")],
    )
    uod.entry("PU01", unit="%", safe_value=0.0)
    return uod.build()
"""


def test_every_example_with_a_method_is_covered() -> None:
    assert set(MARKS) | {"chromatography", "vessel"} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_example_names_a_process_model(name: str) -> None:
    uod = load_uod(str(EXAMPLES / f"{name}.py"))
    assert uod.simulation_factory is not None
    assert for_simulation(uod).hardware_factory is uod.simulation_factory


@pytest.mark.parametrize("name", sorted(MARKS))
def test_device_examples_simulate_to_stopped(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    uod, method = EXAMPLES / f"{name}.py", EXAMPLES / f"{name}.pcode"
    code = main(["simulate", "--uod", str(uod), "--method", str(method), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[-1]["text"] == "Stopped"
    assert [e["text"] for e in events if e["kind"] == "mark"] == MARKS[name]
    assert not [e for e in events if e["kind"] == "error" or e.get("line_state") == "failed"]


def test_dosing_tares_and_doses_by_weight_on_the_model() -> None:
    """The regression of issue 18: the balance read None on `simulate`, so Tare timed out."""
    from engine.sim.dosing import DosingModel

    model = DosingModel()
    model.set_input("Pump Speed", 150.0)
    model.set_input("Pump Command", "Run")
    model.step(30.0)
    assert model.outputs()["Balance Weight"] == pytest.approx(60.0)  # 150 rpm * 0.8 mL * 0.5 min
    model.set_input("Balance Tare", 1.0)
    assert model.outputs()["Balance Weight"] == 0.0
    with pytest.raises(ValueError, match=r"0\.\.600 rpm"):
        model.set_input("Pump Speed", 900.0)
    with pytest.raises(ValueError, match="unknown input"):
        model.set_input("Valve", 1.0)


def test_a_unit_without_a_model_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plant.py"
    path.write_text(NO_MODEL)
    method = tmp_path / "m.pcode"
    method.write_text("Stop\n")
    with pytest.raises(NoProcessModel, match=r"add uod\.simulation\("):
        for_simulation(load_uod(str(path)))
    code = main(["simulate", "--uod", str(path), "--method", str(method)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "has no process model" in err and "uod.simulation(" in err


def test_choice_codes_reach_the_model_as_choice_names() -> None:
    """The Modbus unit writes Inlet as a code (VA01 = 1); its model takes the valve's name."""
    from engine.clock import FakeClock

    uod = load_uod(str(EXAMPLES / "chromatography_modbus.py"))
    assert uod.simulation_factory is not None
    hw = uod.simulation_factory(FakeClock().monotonic)
    hw.write({"Inlet": 1, "PU01": 50.0})
    assert hw.drain_events() == []
    assert hw.model.model.inlet == "VA01"  # type: ignore[attr-defined]
    hw.write({"Inlet": 9})
    assert "no choice has code 9" in str(hw.drain_events()[0])
