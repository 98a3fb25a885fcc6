"""What nodes say to each other, without NATS: subjects, bad payloads, the replicated cache."""

from __future__ import annotations

import json

import pytest

from aggregator.cluster import wire
from aggregator.live import LiveHub, LiveState
from protocol import Quality, TagsUpdated, TagValue
from tests.aggregator.helpers import UOD


def test_unit_ids_become_one_subject_token() -> None:
    s = wire.Subjects("setpoint.plant1")
    assert s.unit("pc-1/Chrom.x *>", "tags") == "setpoint.plant1.unit.pc-1_Chrom_x___.tags"
    assert s.kind_of("setpoint.plant1.node.a") == "node"
    assert s.kind_of("setpoint.plant1.unit.u.tags") == "unit"
    assert s.kind_of("setpoint.other.unit.u.tags") == ""


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"node": "a", "unit": "u", "kind": "command_result", "data": {}}).encode(),
        json.dumps({"node": "a", "unit": 3, "kind": "tags", "data": {}}).encode(),
        json.dumps({"node": "a", "unit": "u", "kind": "tags", "since": "x"}).encode(),
    ],
)
def test_anything_else_is_ignored(payload: bytes) -> None:
    assert wire.decode(payload) is None


def roundtrip(kind: str, data: object, since: float = 1.0) -> wire.Change:
    change = wire.decode(wire.encode("a", "u", kind, data, since))
    assert change is not None
    return change


def test_changes_fill_the_cache_and_come_out_as_hub_topics() -> None:
    live = LiveState(LiveHub())
    topic, _ = wire.apply(live, roundtrip("registration", UOD)) or ("", None)
    assert topic == "unit/u/registration" and live.engines["u"].online
    assert live.engines["u"].uod == UOD
    sample = TagsUpdated(seq=1, time=5.0, tags=[TagValue(name="FT01", value=1.5, tick=5.0)])
    tags = [{"name": "FT01", "value": 1.5, "unit": "L/min", "tick": 5.0, "quality": "good"}]
    published = wire.apply(live, roundtrip("tags", {"tags": tags, "sample": sample}))
    assert published is not None
    assert published[0] == "unit/u/tags"
    assert published[1]["sample"] == sample
    assert live.engines["u"].tags["FT01"].value == 1.5
    summary = live.engines["u"].summary() | {"online": False}
    assert wire.apply(live, roundtrip("units", summary)) == ("units", live.engines["u"].summary())
    assert not live.engines["u"].online
    assert live.engines["u"].tags["FT01"].quality == Quality.STALE


def test_unreadable_tags_are_skipped() -> None:
    live = LiveState(LiveHub())
    bad = [{"name": "X"}, {"name": "Y", "value": 1, "tick": "soon"}, "nope"]
    assert wire.apply(live, roundtrip("tags", {"tags": bad})) is None
    assert wire.apply(live, roundtrip("registration", {"name": 5})) is None


def test_a_single_node_does_not_load_nats() -> None:
    import subprocess
    import sys

    code = (
        "import sys, aggregator.app, aggregator.cli, aggregator.api.health_api\n"
        "print(any(m == 'nats' or m.startswith('nats.') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
