"""Completions for other editors (GET/POST .../method/completions) answer the cases the web editor
answers (tests/fixtures/completions.json); Resume and Skip are forwarded as protocol 1.1
ResumeLine, audited with the method version, and refused for an engine that predates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.api.completions import complete
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "completions.json").read_text(encoding="utf-8")
)
UOD = p.UodDescription.model_validate(FIXTURE["uod"])
CASES: list[dict[str, Any]] = FIXTURE["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_completion_cases(case: dict[str, Any]) -> None:
    found = complete(UOD, case["text"], case["line"], case["col"], case["mode"])
    labels = [i.label for i in found.items]
    if "labels" in case:
        assert labels == case["labels"]
    if "first" in case:
        assert labels[: len(case["first"])] == case["first"]
    for gone in case.get("absent", []):
        assert gone not in labels
    if "start" in case:
        assert found.start == case["start"]
    assert found.end == case["col"]
    applies = {i.label: i.apply for i in found.items}
    for label, apply in case.get("apply", {}).items():
        assert applies[label] == apply


def unit_path(engine: FakeEngine, tail: str = "") -> str:
    return f"/api/units/{quote(engine.engine_id, safe='')}{tail}"


@pytest.fixture
async def unit(api: Api) -> Any:
    engine = await api.engine(uod=UOD)
    try:
        yield engine
    finally:
        await engine.aclose()


async def test_completions_over_http(api: Api, unit: FakeEngine) -> None:
    query = urlencode({"line": 1, "col": 17, "text": "Watch: PT01 > 3 "})
    status, body = await api.call("GET", unit_path(unit, f"/method/completions?{query}"), "viewer")
    assert status == 200, body
    assert body["from_col"] == 17 and body["to_col"] == 17
    assert [i["label"] for i in body["items"]][:2] == ["bar", "mbar"]
    assert body["items"][0] == {
        "label": "bar",
        "kind": "unit",
        "detail": "its own unit",
        "apply": "bar",
    }
    status, body = await api.call(
        "POST",
        unit_path(unit, "/method/completions"),
        "viewer",
        json={"text": "Macro: M\nCall macro: ", "line": 2, "col": 13},
    )
    assert status == 200 and [i["label"] for i in body["items"]] == ["M"]


async def test_completions_default_to_the_current_method(api: Api, unit: FakeEngine) -> None:
    await unit.method(2, [("a", "Block: Load"), ("b", "Watch: Block == ")])
    await until(lambda: unit_has_method(api, unit), 5, "method stored")
    query = urlencode({"line": 2, "col": 17})
    status, body = await api.call("GET", unit_path(unit, f"/method/completions?{query}"), "viewer")
    assert status == 200 and [i["label"] for i in body["items"]] == ["Load"]


def unit_has_method(api: Api, unit: FakeEngine) -> bool:
    from aggregator.api.service import API_STATE_KEY

    return unit.engine_id in api.agg.app[API_STATE_KEY].methods


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("line=0&col=1", "invalid query parameter: line"),
        ("line=1", "invalid query parameter: col"),
        ("line=x&col=1", "invalid query parameter: line"),
        ("line=1&col=1&mode=edit", "invalid query parameter: mode"),
    ],
)
async def test_bad_completion_queries(api: Api, unit: FakeEngine, query: str, message: str) -> None:
    status, body = await api.call("GET", unit_path(unit, f"/method/completions?{query}"), "viewer")
    assert status == 400 and message in body["error"], body


async def test_completions_of_an_unknown_unit(api: Api) -> None:
    status, body = await api.call("GET", "/api/units/nope/method/completions?line=1&col=1")
    assert status == 404 and "no unit with id 'nope'" in body["error"]


async def test_resume_and_skip_are_forwarded_and_audited(api: Api, unit: FakeEngine) -> None:
    await unit.method(4, [("a", "Fail")])
    await until(lambda: unit_has_method(api, unit), 5, "method stored")
    assert (await api.call("POST", unit_path(unit, "/runlog/7/resume")))[0] == 200
    assert (await api.call("POST", unit_path(unit, "/runlog/9/skip")))[0] == 200
    resume, skip = unit.requests
    assert isinstance(resume, p.ResumeLine) and (resume.run_log_id, resume.skip) == ("7", False)
    assert isinstance(skip, p.ResumeLine) and (skip.run_log_id, skip.skip) == ("9", True)
    assert resume.user == api.names["operator"]
    unit.answer = lambda m: (False, "Run-log line '8' has already been skipped", None)
    status, body = await api.call("POST", unit_path(unit, "/runlog/8/skip"))
    assert status == 409 and "already been skipped" in body["error"]
    _, page = await api.call("GET", "/api/audit?limit=3", "admin")
    refused, skipped, resumed = page["items"]
    assert resumed["action"] == "resume"
    assert resumed["new"] == {"line": "7", "method_version": 4, "result": "ok"}
    assert skipped["action"] == "skip" and skipped["new"]["line"] == "9"
    assert refused["new"]["result"].endswith("Run-log line '8' has already been skipped")


async def test_a_viewer_may_not_resume(api: Api, unit: FakeEngine) -> None:
    status, body = await api.call("POST", unit_path(unit, "/runlog/7/resume"), "viewer")
    assert status == 403 and "operator role" in body["error"]
    assert unit.requests == []


async def test_an_engine_older_than_resume_is_not_asked(api: Api, unit: FakeEngine) -> None:
    with api.agg.ctx.storage.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE engine SET protocol_version = '1.0' WHERE id = :id"),
            {"id": unit.engine_id},
        )
    status, body = await api.call("POST", unit_path(unit, "/runlog/7/resume"))
    assert status == 409, body
    assert "speaks protocol 1.0; Resume and Skip need 1.1" in body["error"]
    assert unit.requests == []
