from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import protocol as p
from protocol.schema import message_schema, schema_text

from .examples import ALL_MESSAGES

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "protocol.schema.json"


def test_checked_in_schema_matches_the_models() -> None:
    assert CHECKED_IN.read_text() == schema_text(), (
        "docs/protocol.schema.json drifted from protocol/: run "
        "`python -m protocol schema -o docs/protocol.schema.json` and commit it"
    )


def test_schema_names_every_message() -> None:
    names = {m.type for m in ALL_MESSAGES}
    mapping = message_schema()["discriminator"]["mapping"]
    assert set(mapping) == names


def test_cli_writes_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    subprocess.run(
        [sys.executable, "-m", "protocol", "schema", "--output", str(out)], check=True, cwd=ROOT
    )
    assert json.loads(out.read_text())["title"] == "Setpoint engine-aggregator protocol"
    assert p.PROTOCOL_VERSION in json.loads(out.read_text())["description"]
