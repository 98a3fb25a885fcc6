"""The plot shows what is stored: the data drawn in the page, read back from it during a real run of
the simulated chromatography unit, compared with `GET /api/units/{id}/plot` (issue 14).

While the run goes on, the page draws exactly the stored samples: every point but the one held
to now is a sample the plot API returns, at its stored time, and every stored sample up to the
page's newest is drawn; live values between samples only move "now".

The page's plot exposes, read-only, what it draws (`setpointPlot.read()` on the plot's host
element): per subplot the x values, the time of each, one column per tag and the x scale.
With SETPOINT_SCREENSHOTS=DIR (`make screenshots`) the unit view and the run view are also saved
as DIR/unit-view.png and DIR/run-view.png for docs/quickstart.md.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import ARTIFACTS, ROOT, Shots, Stack, login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)

TAGS = ["UV01", "CT01", "FT01", "PT01"]
API_TAGS = [*TAGS, "Inlet", "Mark", "Run Time", "Accumulated Volume", "Accumulated CV"]
DATA_LOG_INTERVAL = 1.0  # the chromatography UOD's
SAME_SAMPLE = 2e-6  # s: storage keeps times to the microsecond, and /ws sends them so
LATENCY = 1.0  # s: scan, websocket and one animation frame, generously


def unit_href(stack: Stack) -> str:
    return f"/#/units/{quote(stack.unit_id, safe='')}"


def probe(page: Any) -> dict[str, Any]:
    """What the plot draws now (an empty dict while the plot is still loading), and when."""
    data = page.evaluate(
        "() => document.querySelector('[data-testid=\"plot\"]')?.setpointPlot?.read() ?? {}"
    )
    data["read_at"] = time.time()
    return dict(data)


def api_plot(stack: Stack, token: str, path: str) -> dict[str, Any]:
    tags = quote(",".join(API_TAGS))
    return dict(stack.http("GET", f"{path}/plot?tags={tags}&points=2000", token=token))


def series(plot: dict[str, Any], tag: str) -> tuple[list[float], list[Any]]:
    s = next(x for x in plot["series"] if x["tag"] == tag)
    return s["t"], s["v"]


def x_at(plot: dict[str, Any], axis: str, t: float) -> float:
    """The x of time t as the page must compute it: the axis tag interpolated between its
    samples; after the last one Run Time goes on as a clock and a volume stays."""
    ts, vs = series(plot, axis)
    i = bisect.bisect_right(ts, t + SAME_SAMPLE) - 1
    assert i >= 0, f"{axis} has no sample before {t}"
    if i + 1 < len(ts):
        return float(vs[i] + (vs[i + 1] - vs[i]) * (t - ts[i]) / (ts[i + 1] - ts[i]))
    return float(vs[i] + (t - ts[i] if axis == "Run Time" else 0.0))


def drawn(p: dict[str, Any], tag: str) -> list[tuple[float, float, float]]:
    """(time, x, value) of every point the page draws for a tag."""
    for sub in p["subplots"]:
        if tag in sub["tags"]:
            col = sub["ys"][sub["tags"].index(tag)]
            return [
                (t, x, v) for t, x, v in zip(sub["t"], sub["x"], col, strict=True) if v is not None
            ]
    raise AssertionError(f"{tag} is not plotted")


def same_points(
    page_points: list[tuple[float, float, float]], plot: dict[str, Any], tag: str, until: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The page's points of a tag but the held-to-now end point, and the stored ones up to the
    page's newest sample (the plot API may have stored newer ones since), as (time, value)."""
    ts, vs = series(plot, tag)
    drawn_tv = [(t, v) for t, _, v in page_points]
    last_t = page_points[-1][0]
    if last_t == until and not any(abs(t - last_t) <= SAME_SAMPLE for t in ts):
        drawn_tv.pop()  # held to now: not a sample
    newest = max((t for t, _ in drawn_tv), default=-1.0)
    stored = [(t, v) for t, v in zip(ts, vs, strict=True) if t <= newest + SAME_SAMPLE]
    return drawn_tv, stored


def check_live(p: dict[str, Any], plot: dict[str, Any], started: float) -> None:
    """The live plot draws exactly the stored samples (each once, at its stored time, with its
    value and its Run Time), spans its data on every subplot and is held to now."""
    until = p["until"]
    assert until is not None, "nothing plotted"
    now_x = p["read_at"] - started  # the run time when the page was read
    scales = {(s["scale"]["min"], s["scale"]["max"]) for s in p["subplots"]}
    assert len(scales) == 1, f"subplots disagree on the x range: {scales}"
    lo, hi = scales.pop()
    xs = p["subplots"][0]["x"]
    assert lo <= xs[0] + 1e-6 and hi >= xs[-1] - 1e-6, (
        f"x range {lo}..{hi} cuts data {xs[0]}..{xs[-1]}"
    )
    assert hi >= now_x - LATENCY, f"x range ends at {hi}, run time is {now_x:.2f}"
    for tag in TAGS:
        points = drawn(p, tag)
        assert len(points) >= 2, f"{tag}: {len(points)} points drawn, no line"
        # Held to now (the newest live scan, not the newest sample): steady tags too.
        assert points[-1][0] == until, f"{tag} ends at {points[-1][0]}, not at {until}"
        assert points[-1][1] >= now_x - LATENCY, f"{tag} stops at x={points[-1][1]}"
        page_tv, stored = same_points(points, plot, tag, until)
        assert len(page_tv) == len(stored), (
            f"{tag}: {len(page_tv)} points drawn, {len(stored)} stored: "
            f"drawn only {sorted(set(page_tv) - set(stored))[:5]}, "
            f"stored only {sorted(set(stored) - set(page_tv))[:5]}; run time of those drawn "
            f"{[round(t - started, 3) for t, _ in page_tv]}, held to {until - started:.3f}"
        )
        for (pt, pv), (st, sv) in zip(page_tv, stored, strict=True):
            assert abs(pt - st) <= SAME_SAMPLE, f"{tag}: drawn at {pt}, stored at {st}"
            assert pv == pytest.approx(sv, rel=1e-9, abs=1e-12), f"{tag} at {st}: {pv} != {sv}"
        for t, x, _ in points[: len(page_tv)]:
            assert x == pytest.approx(x_at(plot, "Run Time", t), abs=SAME_SAMPLE)
        # The page is at most one data-log interval (and the way here) behind storage: every
        # point stored before that is drawn. (A steady reading stores no new point: the model
        # reports at its instruments' resolution, so "newest point" is per tag.)
        due = [t for t in series(plot, tag)[0] if t <= p["read_at"] - DATA_LOG_INTERVAL - LATENCY]
        if due:
            assert page_tv[-1][0] >= due[-1] - SAME_SAMPLE, (
                f"{tag}: newest drawn {page_tv[-1][0]}, stored {due[-1]} is not drawn"
            )


def stored_plot(stack: Stack, token: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
    """The plot API once it has stored what the page was drawing (a live sample is published
    as it arrives, stored a moment later)."""
    newest = max(t for sub in p["subplots"] for t in sub["t"] if t < p["until"]) if p else 0.0

    def covered() -> dict[str, Any] | None:
        plot = api_plot(stack, token, path)
        ts, _ = series(plot, "Run Time")
        return plot if ts and ts[-1] >= newest - SAME_SAMPLE else None

    return dict(wait_for(covered, 10, "storage to hold the page's samples"))


def check_stored(p: dict[str, Any], plot: dict[str, Any], axis: str, end: float) -> None:
    """A finished run: exactly the stored samples, each held until the next, the last to the end."""
    assert p["xAxis"] == axis and not p["clock"]
    assert p["until"] == pytest.approx(end, abs=1e-6)
    for tag in TAGS:
        ts, vs = series(plot, tag)
        want = [(t, x_at(plot, axis, t), v) for t, v in zip(ts, vs, strict=True)]
        if end > ts[-1]:
            want.append((end, x_at(plot, axis, end), vs[-1]))
        got = drawn(p, tag)
        assert len(got) == len(want), f"{tag}: {len(got)} points drawn, {len(want)} expected"
        for (gt, gx, gv), (wt, wx, wv) in zip(got, want, strict=True):
            assert gt == pytest.approx(wt, abs=1e-9)
            assert gx == pytest.approx(wx, rel=1e-9, abs=1e-9), f"{tag} at {wt}: x {gx} != {wx}"
            assert gv == pytest.approx(wv), f"{tag} at {wt}: {gv} != {wv}"


def count_ws_bytes(page: Any) -> dict[str, int]:
    """Bytes of the /ws frames the page receives, per topic (whatever else: "other")."""
    received: dict[str, int] = {}

    def frame(payload: str | bytes) -> None:
        text = payload if isinstance(payload, str) else payload.decode()
        try:
            topic = str(json.loads(text).get("topic") or "other")
        except ValueError:
            topic = "other"
        topic = topic.rpartition("/")[2]
        received[topic] = received.get(topic, 0) + len(text.encode())

    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    return received


def report_ws_bytes(received: dict[str, int], seconds: float) -> None:
    """The samples topic adds a few per cent to the tag traffic (one data-log sample per second,
    of the changed tags only, against ten live updates of them), written to
    test-artifacts/ws-bytes.json for the record."""
    figures = {"seconds": round(seconds, 1), **received}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "ws-bytes.json").write_text(json.dumps(figures, indent=1) + "\n")
    tags, samples = received.get("tags", 0), received.get("samples", 0)
    assert tags and samples, figures
    assert samples <= 0.3 * tags, figures


def screenshot(page: Any, shots: Shots, name: str) -> None:
    shots(page, name)
    target = os.environ.get("SETPOINT_SCREENSHOTS")
    if target:
        out = Path(target) if Path(target).is_absolute() else ROOT / target
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / f"{name}.png"))


def wait_run_time(started: float, seconds: float) -> None:
    wait_for(lambda: time.time() - started >= seconds, seconds + 30, f"run time {seconds} s")


def test_live_plot_matches_storage(stack: Stack, new_page: Any, shots: Shots) -> None:
    token = stack.login("alice")
    unit_api = f"/api/units/{quote(stack.unit_id, safe='')}"
    before = new_page(1366, 900)
    received = count_ws_bytes(before)
    login(before, "alice")
    before.goto(unit_href(stack))
    expect(before.locator('[data-testid="unit-view"]')).to_be_visible()
    expect(before.locator('[data-testid="plot"] canvas')).to_have_count(2)

    # The page is open before Start.
    before.get_by_role("button", name="Start", exact=True).click()
    run_id = wait_for(
        lambda: stack.http("GET", unit_api, token=token).get("run_id"), 15, "the run to start"
    )
    started = wait_for(
        lambda: stack.http("GET", f"/api/runs/{run_id}", token=token).get("started"),
        15,
        "the run to be stored",
    )
    expect(before.get_by_role("button", name="Following")).to_be_visible()

    wait_run_time(started, 3)
    p = probe(before)
    check_live(p, stored_plot(stack, token, unit_api, p), started)

    # Another page is opened during the run.
    during = new_page(1366, 900)
    login(during, "alice")
    during.goto(unit_href(stack))
    expect(during.locator('[data-testid="plot"] canvas')).to_have_count(2)
    wait_for(lambda: probe(during).get("until"), 15, "the mid-run page to plot")

    for moment in (6, 9, 12, 16):
        wait_run_time(started, moment)
        for p in [probe(before), probe(during)]:
            check_live(p, stored_plot(stack, token, unit_api, p), started)
    report_ws_bytes(received, time.time() - started)

    # The legend shows the latest values when the cursor is off the plot.
    legend = before.locator('[data-testid="plot"] .u-legend').first
    expect(legend).to_contain_text("UV01")
    assert "\u2013" not in legend.inner_text(), legend.inner_text()  # the "no value" dash
    screenshot(before, shots, "unit-view")

    # Stop: the unit view goes on showing the run, held to its end.
    before.get_by_role("button", name="Stop", exact=True).click()
    before.get_by_role("button", name="Stop the run").click()
    expect(before.locator('[data-testid="unit-state"]')).to_have_text("Stopped", timeout=20_000)
    stopped = wait_for(
        lambda: stack.http("GET", f"/api/runs/{run_id}", token=token).get("stopped"),
        20,
        "the run to be closed",
    )
    wait_for(
        lambda: probe(before).get("until") == pytest.approx(stopped, abs=1e-6),
        20,
        "the plot held to the end",
    )
    expect(before.get_by_role("button", name="Following")).to_have_count(0)
    check_stored(probe(before), api_plot(stack, token, f"/api/runs/{run_id}"), "Run Time", stopped)


def test_run_view(stack: Stack, new_page: Any, shots: Shots) -> None:
    token = stack.login("alice")
    run = stack.http("GET", f"/api/runs?unit_id={quote(stack.unit_id)}&limit=1", token=token)[
        "items"
    ][0]
    assert run["stopped"], "the previous test leaves a finished run"
    stored = api_plot(stack, token, f"/api/runs/{run['id']}")
    page = new_page(1366, 900)
    login(page, "alice")
    page.goto(f"/#/runs/{quote(run['id'], safe='')}")
    expect(page.locator('[data-testid="run-view"]')).to_be_visible()
    plot = page.locator('[data-testid="plot"]')
    expect(plot.locator("canvas")).to_have_count(2)
    wait_for(lambda: probe(page).get("until"), 15, "the run's plot")

    # A finished run has nothing to follow; it is drawn whole, exactly as stored.
    expect(page.get_by_role("button", name="Following")).to_have_count(0)
    reset = page.get_by_role("button", name="Reset zoom")
    expect(reset).to_be_disabled()
    check_stored(probe(page), stored, "Run Time", run["stopped"])
    whole = probe(page)["subplots"][0]["scale"]
    screenshot(page, shots, "run-view")

    # Zoom and pan move every subplot together; Reset zoom shows the whole run again.
    page.get_by_role("button", name="Zoom in").click()
    zoomed = probe(page)["subplots"]
    assert zoomed[0]["scale"]["max"] - zoomed[0]["scale"]["min"] == pytest.approx(
        (whole["max"] - whole["min"]) / 2
    )
    assert zoomed[0]["scale"] == zoomed[1]["scale"]
    expect(reset).to_be_enabled()
    page.get_by_role("button", name="Pan right").click()
    panned = probe(page)["subplots"][1]["scale"]
    assert panned["min"] > zoomed[0]["scale"]["min"]
    reset.click()
    assert probe(page)["subplots"][0]["scale"] == whole
    expect(reset).to_be_disabled()

    # The x-axis choice is converted from the stored tags and kept for this user.
    page.get_by_label("X axis").select_option("Accumulated Volume")
    wait_for(lambda: probe(page)["xAxis"] == "Accumulated Volume", 5, "the volume axis")
    check_stored(probe(page), stored, "Accumulated Volume", run["stopped"])
    page.reload()
    expect(page.get_by_label("X axis")).to_have_value("Accumulated Volume")
    wait_for(lambda: probe(page).get("until"), 15, "the run's plot after reload")
    check_stored(probe(page), stored, "Accumulated Volume", run["stopped"])
    page.goto(unit_href(stack))
    expect(page.get_by_label("X axis")).to_have_value("Accumulated Volume")

    other = new_page(1366, 900)
    login(other, "bob")
    other.goto(f"/#/runs/{quote(run['id'], safe='')}")
    expect(other.get_by_label("X axis")).to_have_value("Run Time")
    page.get_by_label("X axis").select_option("Run Time")
