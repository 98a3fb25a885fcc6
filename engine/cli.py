"""`setpoint-engine`: run, simulate and check a unit."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setpoint-engine", description="Setpoint engine")
    parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.parse_args(argv)
    return 2
