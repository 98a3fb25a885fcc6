"""The simulated instruments' replies, command by command (pure, fake clock)."""

import pytest

from engine.simdev.instruments import BalanceSim, PumpSim


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pump_command_set() -> None:
    clock = FakeClock()
    changes: list[float] = []
    pump = PumpSim(clock=clock, on_change=lambda p: changes.append(p.flow_ml_min))
    assert pump.handle("STATUS?") == "STATUS STOP 0.0 CW"
    assert pump.handle("SPEED 100") == "OK"
    assert pump.handle("SPEED 601") == "ER 2 range"
    assert pump.handle("speed   50.5") == "OK"
    assert pump.handle("RUN") == "OK"
    assert pump.handle("FLOW?") == "FLOW 40.40 mL/min"
    clock.now = 60.0
    assert pump.volume_ml() == pytest.approx(40.4)
    assert pump.handle("DIR CCW") == "OK"
    assert pump.handle("STATUS?") == "STATUS RUN 50.5 CCW"
    clock.now = 90.0
    assert pump.volume_ml() == pytest.approx(40.4 - 20.2)
    assert pump.handle("SPEED?") == "SPEED 50.5 rpm"
    assert pump.handle("JUMP") == "ER 1 unknown command"
    assert pump.handle("STOP") == "OK"
    assert changes == pytest.approx([40.4, -40.4, 0.0])


def test_balance_sics_replies() -> None:
    pumped = [0.0]
    balance = BalanceSim(pumped_ml=lambda: pumped[0], initial_g=100.0)
    assert balance.handle("S") == "S S    100.000 g"
    assert balance.handle("T") == "T S    100.000 g"
    assert balance.handle("S") == "S S      0.000 g"
    pumped[0] = 12.5
    assert balance.handle("SI") == "S D     12.500 g"
    assert balance.handle("SI") == "S S     12.500 g"
    assert balance.handle("Z") == "Z A"
    assert balance.handle("S") == "S S      0.000 g"
    assert balance.handle("X") == "ES"
    pumped[0] = 6000.0
    assert balance.handle("S") == "S +"
