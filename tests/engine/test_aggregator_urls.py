"""`setpoint-engine run --aggregator`: several aggregators of one site, by repeating the option or
as a comma list, kept in order; bad ones end with one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import EXIT_USAGE, CliError, main
from engine.cli_run import aggregator_urls

ROOT = Path(__file__).resolve().parents[2]
UOD = str(ROOT / "uod_examples" / "chromatography.py")


def test_repeated_options_and_comma_lists_keep_their_order() -> None:
    assert aggregator_urls(["ws://a:9800", "ws://b:9800, wss://c.example.org"]) == [
        "ws://a:9800",
        "ws://b:9800",
        "wss://c.example.org",
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["http://a:9800"], "--aggregator must look like ws://HOST:PORT, not 'http://a:9800'"),
        (["ws://a:9800,"], "--aggregator must look like ws://HOST:PORT, not ''"),
        (["ws://"], "--aggregator must look like ws://HOST:PORT, not 'ws://'"),
        (
            ["ws://a:9800", "ws://b:9800,ws://a:9800"],
            "--aggregator ws://a:9800 is given twice; name each aggregator once",
        ),
    ],
    ids=["scheme", "empty", "no-host", "twice"],
)
def test_bad_aggregator_lists(values: list[str], message: str) -> None:
    with pytest.raises(CliError) as caught:
        aggregator_urls(values)
    assert str(caught.value) == message


def test_run_refuses_a_bad_second_aggregator(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SETPOINT_ENGINE_TOKEN", "some-token")
    code = main(
        [
            "run",
            "--uod",
            UOD,
            "--aggregator",
            "ws://127.0.0.1:9",
            "--aggregator",
            "tcp://127.0.0.1:10",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "setpoint-engine: error: --aggregator must look like ws://HOST:PORT, not "
        "'tcp://127.0.0.1:10'"
    ]
