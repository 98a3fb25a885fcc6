"""The prediction made at Start overlaid on a run (issue 18 item 4): a real aggregator keeps the
prediction when the run starts; the run view draws it dashed over the data, exactly the stored
trace and marks; the unit's plot shows the editor's Simulate result before Start."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import Shots, Stack, login, wait_for
from tests.browser.test_plot import api_plot, probe, series, unit_href

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)


def drawn_traces(page: Any) -> dict[str, dict[str, list[Any]]]:
    found: dict[str, dict[str, list[Any]]] = {}
    for sub in probe(page).get("subplots", []):
        for trace in sub.get("predicted", []):
            found[trace["tag"]] = {"x": trace["x"], "v": trace["v"]}
    return found


def numbers(values: list[Any]) -> list[float | None]:
    return [v if isinstance(v, int | float) else None for v in values]


def test_run_view_overlays_the_prediction_made_at_start(
    stack: Stack, new_page: Any, shots: Shots
) -> None:
    token = stack.login("alice")
    unit_api = f"/api/units/{quote(stack.unit_id, safe='')}"
    stack.http("POST", f"{unit_api}/control", {"action": "Start"}, token=token)
    run_id = wait_for(
        lambda: stack.http("GET", unit_api, token=token).get("run_id"), 15, "the run to start"
    )
    stored = wait_for(
        lambda: stack.http("GET", f"/api/runs/{run_id}/prediction", token=token),
        60,
        "the prediction made at Start",
    )
    assert stored["status"] == "finished", stored
    # the run view draws on Run Time only with the run's samples: a prediction that finished
    # within the first data-log interval must not stop the run before it has any
    wait_for(
        lambda: series(api_plot(stack, token, f"/api/runs/{run_id}"), "Run Time")[0],
        15,
        "the run's Run Time samples in storage",
    )
    stack.http("POST", f"{unit_api}/control", {"action": "Stop"}, token=token)
    wait_for(
        lambda: stack.http("GET", f"/api/runs/{run_id}", token=token).get("stopped"),
        15,
        "the run to stop",
    )
    predicted = stored["prediction"]

    page = new_page(1366, 900)
    login(page, "alice")
    page.goto(f"/#/runs/{quote(run_id, safe='')}")
    bar = page.locator('[data-testid="run-prediction"]')
    expect(bar).to_contain_text("predicted duration")
    # drawn on Run Time once the run's samples are in (the clock stands in until then)
    traces = wait_for(
        lambda: probe(page).get("clock") is False and drawn_traces(page), 15, "the predicted traces"
    )
    assert set(traces) == set(predicted["trace"])
    for tag, trace in predicted["trace"].items():
        assert traces[tag]["x"] == trace["run_time"], tag  # the Run Time axis: as predicted
        assert traces[tag]["v"] == numbers(trace["v"]), tag
    marks = probe(page)["predictedMarks"]
    assert [(m["x"], m["text"]) for m in marks] == [
        (m["run_time"], m["text"]) for m in predicted["marks"]
    ]
    shots(page, "run-view-prediction")

    # the switch takes the overlay away and brings it back
    bar.get_by_role("checkbox").uncheck()
    wait_for(lambda: not drawn_traces(page) and probe(page).get("subplots"), 10, "no overlay")
    assert probe(page)["predictedMarks"] == []
    bar.get_by_role("checkbox").check()
    wait_for(lambda: drawn_traces(page) == traces, 10, "the overlay again")


def test_unit_plot_shows_the_editors_prediction_before_start(
    stack: Stack, new_page: Any, shots: Shots
) -> None:
    page = new_page(1366, 900)
    login(page, "alice")
    page.goto(unit_href(stack))
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text(
        "Block: Equilibration"
    )
    expect(page.locator('[data-testid="unit-state"]')).to_have_text("Stopped")
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator('[data-testid="predicted-mark"]')).to_have_count(6, timeout=30_000)
    traces = wait_for(lambda: drawn_traces(page), 15, "the editor's prediction on the plot")
    assert set(traces) == {"UV01", "CT01", "FT01", "PT01"}
    assert [m["text"] for m in probe(page)["predictedMarks"]][-1] == "Done"
    shots(page, "unit-plot-prediction")
