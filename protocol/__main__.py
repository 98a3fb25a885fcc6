"""`python -m protocol schema [--output FILE]` writes the JSON Schema of all messages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocol.schema import schema_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocol", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("schema", help="write the JSON Schema of every message")
    schema.add_argument(
        "--output", "-o", type=Path, help="file to write (default: standard output)"
    )
    args = parser.parse_args(argv)
    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
