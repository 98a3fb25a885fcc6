"""The batch report pairs predicted and actual marks by text and occurrence."""

from __future__ import annotations

from aggregator.report.prediction import _pairs


def test_marks_pair_by_text_and_occurrence() -> None:
    predicted = [("Buffer A", 0.0), ("Load", 10.0), ("Buffer A", 20.0), ("Done", 30.0)]
    actual = [("Buffer A", 0.5), ("Load", 11.0), ("Buffer A", 22.0), ("Extra", 25.0)]
    assert _pairs(predicted, actual) == [
        ("Buffer A", 0.0, 0.5),
        ("Load", 10.0, 11.0),
        ("Buffer A", 20.0, 22.0),
        ("Done", 30.0, None),
        ("Extra", None, 25.0),
    ]
