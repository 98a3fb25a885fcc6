"""The suite's PostgreSQL policy, run as an inner pytest session against a port nobody serves."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest

@pytest.mark.postgres
def test_needs_postgres():
    raise AssertionError("must not run without a server")

def test_plain():
    assert True
"""


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inner(pytester: pytest.Pytester, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    postgres: needs PostgreSQL\n")
    pytester.makepyfile(INNER)
    monkeypatch.setenv("SETPOINT_TEST_PG_PORT", str(port))


def test_without_a_server_postgres_tests_skip_with_one_line(
    pytester: pytest.Pytester, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SETPOINT_REQUIRE_POSTGRES", raising=False)
    _inner(pytester, closed_port, monkeypatch)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.re_match_lines([r"setpoint: 1 PostgreSQL tests skipped: no PostgreSQL server .*"])


def test_ci_makes_a_missing_server_an_error(
    pytester: pytest.Pytester, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SETPOINT_REQUIRE_POSTGRES", "1")
    _inner(pytester, closed_port, monkeypatch)
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stderr.re_match_lines([r".*SETPOINT_REQUIRE_POSTGRES is set but no PostgreSQL server.*"])
