"""`setpoint-aggregator`: serve, users and engine tokens."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setpoint-aggregator", description="Setpoint aggregator")
    parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.parse_args(argv)
    return 2
