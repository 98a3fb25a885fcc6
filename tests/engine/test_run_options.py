"""`setpoint-engine run`: where the engine token comes from, and bad --token-file/--safe-timeout
values, each ending with one line on stderr and exit code 2 before anything is started."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.cli import EXIT_USAGE, CliError, main
from engine.cli_run import _token

ROOT = Path(__file__).resolve().parents[2]
UOD = str(ROOT / "uod_examples" / "chromatography.py")


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"token": None, "token_file": None, **values})


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str]]:
    code = main(["run", "--uod", UOD, "--aggregator", "ws://127.0.0.1:9", *extra])
    return code, capsys.readouterr().err.splitlines()


def test_token_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.txt"
    code, err = _run(capsys, "--token-file", str(path))
    assert code == EXIT_USAGE
    assert err == [f"setpoint-engine: error: --token-file {path}: file not found"]


@pytest.mark.parametrize("content", ["", "\n", "  \r\n\t"])
def test_token_file_empty(content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "token.txt"
    path.write_text(content)
    code, err = _run(capsys, "--token-file", str(path))
    assert code == EXIT_USAGE
    assert err == [
        f"setpoint-engine: error: --token-file {path}: the file is empty; put the engine token "
        "from `setpoint-aggregator engine-token create NAME` in it"
    ]


def test_token_file_with_more_than_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token.txt"
    path.write_text("abc def\n")
    code, err = _run(capsys, "--token-file", str(path))
    assert code == EXIT_USAGE
    assert err == [
        f"setpoint-engine: error: --token-file {path}: the file must hold the token alone"
    ]


def test_token_and_token_file_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "token.txt"
    path.write_text("abc\n")
    code, err = _run(capsys, "--token-file", str(path), "--token", "abc")
    assert code == EXIT_USAGE
    assert err == [
        "setpoint-engine: error: give the engine token with --token or --token-file, not both"
    ]


def test_no_token_anywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SETPOINT_ENGINE_TOKEN", raising=False)
    code, err = _run(capsys)
    assert code == EXIT_USAGE
    assert err == [
        "setpoint-engine: error: --aggregator needs an engine token in SETPOINT_ENGINE_TOKEN or "
        "a --token-file; create one on the aggregator with `setpoint-aggregator engine-token "
        "create NAME`"
    ]


def test_where_the_token_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token.txt"
    path.write_bytes(b"\xef\xbb\xbffrom-file\r\n")  # as Notepad may save it
    monkeypatch.setenv("SETPOINT_ENGINE_TOKEN", " from-env\n")
    assert _token(_args(token_file=str(path))) == "from-file"
    assert _token(_args(token="given")) == "given"
    assert _token(_args()) == "from-env"
    monkeypatch.delenv("SETPOINT_ENGINE_TOKEN")
    assert _token(_args()) == ""


def test_token_file_that_is_no_token_file(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"^--token-file .*: is a directory, not the token file$"):
        _token(_args(token_file=str(tmp_path)))
    utf16 = tmp_path / "token.txt"
    utf16.write_text("abc", encoding="utf-16")  # Notepad's "Unicode"
    with pytest.raises(CliError, match=r"^--token-file .*token.txt: cannot read: .*utf-8"):
        _token(_args(token_file=str(utf16)))


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_safe_timeout_must_be_positive_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--uod", UOD, "--safe-timeout", value])
    assert exc.value.code == EXIT_USAGE
    assert "argument --safe-timeout: must be" in capsys.readouterr().err
