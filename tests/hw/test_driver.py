"""OutputLedger, the drivers' sans-I/O write bookkeeping, without a device."""

from __future__ import annotations

from engine.hw.base import OutputCheck, Quality, Reading, ScalarValue
from engine.hw.driver import OutputLedger, close_enough

Row = tuple[ScalarValue, OutputCheck, str]


def results(ledger: OutputLedger, held: dict[str, ScalarValue], **kw: object) -> dict[str, Row]:
    def read_back(tag: str) -> Reading | None:
        return Reading(held[tag], Quality.GOOD, 0.0) if tag in held else None

    out = ledger.results(
        {"pump": 0.0, "valve": False},
        read_back,
        lambda _t, a, b: close_enough(a, b),
        timeout=1.0,
        link_problem=kw.get("link_problem"),  # type: ignore[arg-type]
        link_down=bool(kw.get("link_down", False)),
    )
    return {r.tag: (r.value, r.check, r.detail) for r in out}


def test_queue_deduplicates_unless_forced_and_forgets_after_reconnect() -> None:
    ledger = OutputLedger()
    assert ledger.queue("pump", 50.0, force=False)
    assert not ledger.queue("pump", 50.0, force=False)
    assert ledger.queue("pump", 50.0, force=True)
    write = ledger.head()
    assert write is not None
    ledger.done(write)
    ledger.done(ledger.pending[0])
    assert not ledger.pending and ledger.sent == 2
    ledger.forget_requested()
    assert ledger.queue("pump", 50.0, force=False)


def test_refusal_is_failed_and_allows_the_same_value_again() -> None:
    ledger = OutputLedger()
    ledger.queue("pump", 900.0, force=False)
    ledger.done(ledger.pending[0], "out of range")
    assert results(ledger, {})["pump"] == (900.0, OutputCheck.FAILED, "refused: out of range")
    assert ledger.queue("pump", 900.0, force=False)


def test_read_back_must_come_after_the_write() -> None:
    ledger = OutputLedger()
    ledger.queue("pump", 0.0, force=True)
    ledger.queue("valve", False, force=True)
    assert not ledger.settled(["pump"])
    ledger.mark_read(["pump"], ledger.read_mark())  # a read before the write: does not count
    for _ in range(2):
        ledger.done(ledger.pending[0])
    assert not ledger.settled(["pump"])
    assert results(ledger, {"pump": 0.0})["pump"][1] is OutputCheck.WRITTEN
    ledger.mark_read(["pump"], ledger.read_mark())
    assert ledger.settled(["pump"])
    got = results(ledger, {"pump": 0.0})
    assert got == {
        "pump": (0.0, OutputCheck.CONFIRMED, ""),
        "valve": (False, OutputCheck.WRITTEN, ""),  # no read-back offered
    }
    assert results(ledger, {"pump": 3.0})["pump"] == (
        0.0,
        OutputCheck.MISMATCH,
        "the device holds 3.0",
    )
    down = results(ledger, {"pump": 0.0}, link_problem="Reconnect: gone", link_down=True)
    assert (
        down["pump"][1] is OutputCheck.WRITTEN
        and "before the connection was lost" in down["pump"][2]
    )


def test_queued_and_never_queued_outputs_fail() -> None:
    ledger = OutputLedger()
    ledger.queue("pump", 0.0, force=True)
    got = results(ledger, {}, link_problem="Error: cannot connect")
    assert got["pump"] == (
        0.0,
        OutputCheck.FAILED,
        "not written within 1 s; connection Error: cannot connect",
    )
    assert got["valve"] == (False, OutputCheck.FAILED, "safe value never queued")


def test_close_enough() -> None:
    assert close_enough("Stop", "STOP") and close_enough(0.1, 0.1 + 1e-12)
    assert not close_enough(33.33, 33.3) and close_enough(True, 1) and not close_enough("a", "b")
