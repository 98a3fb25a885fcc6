"""The simulated process models behave like the equipment they stand for."""

from __future__ import annotations

import pytest

from engine.sim.chromatography import ChromatographyModel
from engine.sim.model import ProcessModel
from engine.sim.vessel import VesselModel


def _run(model: ProcessModel, seconds: float, dt: float = 0.1) -> None:
    for _ in range(round(seconds / dt)):
        model.step(dt)


def test_models_implement_the_protocol() -> None:
    assert isinstance(ChromatographyModel(), ProcessModel)
    assert isinstance(VesselModel(), ProcessModel)


def test_flow_follows_the_pump_and_needs_an_open_inlet() -> None:
    m = ChromatographyModel()
    m.set_input("PU01", 50)
    _run(m, 10)
    assert m.outputs()["FT01"] == 0.0  # inlet closed
    m.set_input("Inlet", "VA01")
    _run(m, 10)
    assert m.outputs()["FT01"] == pytest.approx(60.0, abs=0.01)


def test_pressure_rises_with_flow() -> None:
    pressures = []
    for pump in (10, 50, 100):
        m = ChromatographyModel()
        m.set_input("Inlet", "VA01")
        m.set_input("PU01", pump)
        _run(m, 10)
        pressures.append(float(m.outputs()["PT01"]))
    assert pressures == sorted(pressures) and pressures[0] < pressures[-1] - 1.0


def test_detectors_see_an_inlet_change_after_the_system_volume_with_dispersion() -> None:
    m = ChromatographyModel()
    m.set_input("Inlet", "VA01")
    m.set_input("PU01", 50)  # 60 L/h = 1 L/min: the 0.25 L system volume passes in 15 s
    _run(m, 20)
    m.set_input("Inlet", "VA02")
    seen = []
    for _ in range(40):
        _run(m, 1)
        seen.append(float(m.outputs()["CT01"]))
    assert seen[2] < 5.0  # not yet at 3 s
    halfway = next(i for i, c in enumerate(seen) if c > 25.75) + 1
    assert 10 <= halfway <= 18  # about one system volume
    rising = [i for i, c in enumerate(seen) if 5.0 < c < 45.0]
    assert len(rising) >= 5  # a smeared front, not a step
    assert seen[-1] == pytest.approx(50.0, abs=0.5)


def test_bound_protein_elutes_as_a_peak_with_high_salt() -> None:
    m = ChromatographyModel()
    m.set_input("Inlet", "VA03")
    m.set_input("PU01", 50)
    _run(m, 60)
    assert m.bound > 0.5
    m.set_input("Inlet", "VA01")
    _run(m, 60)
    baseline = float(m.outputs()["UV01"])
    m.set_input("Inlet", "VA02")
    uv = []
    for _ in range(120):
        _run(m, 1)
        uv.append(float(m.outputs()["UV01"]))
    assert max(uv) > 500 > baseline
    assert uv[-1] < max(uv) / 2  # a peak, not a plateau


def test_invalid_inputs_are_refused() -> None:
    m = ChromatographyModel()
    with pytest.raises(ValueError, match=r"0\.\.100"):
        m.set_input("PU01", 150)
    with pytest.raises(ValueError, match="VA01"):
        m.set_input("Inlet", "VA07")
    with pytest.raises(ValueError, match="unknown input"):
        m.set_input("XX", 1)


def test_vessel_heats_with_lag_and_doses() -> None:
    v = VesselModel()
    v.set_input("HE01", 100)
    v.set_input("ST01", 300)
    _run(v, 2)
    assert float(v.outputs()["TT01"]) < 21.0  # the sensor lags the heater
    _run(v, 60)
    assert float(v.outputs()["TT01"]) > 35.0
    v.set_input("PU02", 60)  # 60 mL/min
    _run(v, 30)
    assert float(v.outputs()["LT01"]) == pytest.approx(1030.0, abs=0.5)
    assert float(v.outputs()["FT02"]) == pytest.approx(60.0)


def test_coarse_steps_match_fine_steps() -> None:
    fine, coarse = VesselModel(), VesselModel()
    for model in (fine, coarse):
        model.set_input("HE01", 100)
    _run(fine, 30, dt=0.1)
    _run(coarse, 30, dt=3.0)
    assert float(coarse.outputs()["TT01"]) == pytest.approx(float(fine.outputs()["TT01"]), abs=0.5)
