"""`--help` explains every option of every command, and says its default where it has one."""

from __future__ import annotations

import argparse

import pytest

from aggregator.cli import build_parser as aggregator_parser
from engine.cli import build_parser as engine_parser
from engine.simdev.cli import _parser as sim_parser
from tests.cli.conftest import run_once, tool


def commands(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{path} {name}")
    return found


ALL = [
    *commands(engine_parser(), "setpoint-engine"),
    *commands(aggregator_parser(), "setpoint-aggregator"),
    *commands(sim_parser(), "setpoint-sim"),
]


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_every_option_is_explained(path: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        assert action.help, f"{path} {action.dest}: no help"
        has_default = action.default not in (None, False) and action.option_strings
        if has_default:
            assert "default" in action.help, f"{path} {action.dest}: default not said"


def test_demo_help() -> None:
    done = run_once([tool("python"), "-m", "uod_examples.demo", "--help"])
    assert done.returncode == 0
    for option in ("--data-dir DIR", "--host HOST", "--port PORT", "--modbus-port PORT"):
        assert option in done.stdout
    assert "demo / demo" in done.stdout
