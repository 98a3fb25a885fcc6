"""The web UI against a real aggregator and a simulated chromatography engine, in Chromium.

The tests of this module share one aggregator and engine and run in file order: the operator's
run (started, edited, stopped) is what the run-history test opens afterwards.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import ROOT, Shots, Stack, login, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)


def unit_href(stack: Stack) -> str:
    return f"/#/units/{quote(stack.unit_id, safe='')}"


def pv_value(page: Any, tag: str) -> Any:
    return page.locator(f'[data-testid="pv"][data-tag="{tag}"] [data-testid="pv-value"]')


def test_operator_run(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 768)

    # Log in.
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shots(page, "login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    page.get_by_label("Password").fill("alice-secret-1")
    page.get_by_role("button", name="Sign in").click()

    # The dashboard shows the unit, live.
    card = page.locator('[data-testid="unit-card"]', has_text="Chromatography")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Live")
    expect(card).to_contain_text("Stopped")
    shots(page, "dashboard")

    # The unit view.
    card.get_by_role("link", name="Chromatography").click()
    expect(page.locator('[data-testid="unit-view"]')).to_be_visible()
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text(
        "Block: Equilibration"
    )
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    shots(page, "unit-stopped")

    # Manual operation while stopped: an entry checks its unit and limits before anything is sent.
    pu01 = page.locator('[data-testid="pv"][data-tag="PU01"]')
    entry = page.get_by_label("New value for PU01")
    entry.fill("20 L/h")
    entry.press("Enter")
    expect(pu01.get_by_role("alert")).to_contain_text('Unit "L/h" is not accepted')
    entry.fill("101")
    entry.press("Enter")
    expect(pu01.get_by_role("alert")).to_contain_text("Maximum is 100 %")
    entry.fill("5 %")
    entry.press("Enter")
    expect(pv_value(page, "PU01")).to_have_text("5.00 %")
    inlet = page.locator('[data-testid="pv"][data-tag="Inlet"]')
    inlet.get_by_role("button", name="Buffer B").click()
    expect(pv_value(page, "Inlet")).to_have_text("VA02")
    expect(inlet.get_by_role("button", name="Buffer B")).to_have_attribute("aria-pressed", "true")

    # Start the example method.
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator('[data-testid="unit-state"]')).to_have_text("Running", timeout=15_000)

    # Values change live: the Flow command ramps the pump, so FT01 moves away from its first value.
    ft01 = pv_value(page, "FT01")
    expect(ft01).to_have_text(re.compile(r"\d"), timeout=15_000)
    first = ft01.inner_text()
    expect(ft01).not_to_have_text(first, timeout=15_000)
    expect(page.locator('[data-testid="pv"][data-tag="FT01"]')).to_have_attribute(
        "data-stale", "false"
    )

    # Run-log lines appear, and the method marks started/completed lines.
    lines = page.locator('[data-testid="runlog-line"]')
    expect(lines.nth(2)).to_be_visible(timeout=15_000)
    expect(page.locator('.cm-line[data-state="completed"]').first).to_be_visible(timeout=15_000)
    expect(page.locator("canvas").first).to_be_visible()
    shots(page, "unit-running")

    # The plot: zoom in (it stops following), back to following, and another x axis.
    plot = page.locator('[data-testid="plot"]')
    expect(plot.locator("canvas")).to_have_count(2)  # two subplots
    # Samples reach the plot at the data-log interval: zoom once there is something to zoom.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=plot]').setpointPlot.read()"
        ".subplots[0].x.length > 1",
        timeout=15_000,
    )
    page.get_by_role("button", name="Zoom in").click()
    expect(page.get_by_role("button", name="Reset zoom")).to_be_visible()
    page.get_by_role("button", name="Reset zoom").click()
    expect(page.get_by_role("button", name="Following")).to_be_visible()
    page.get_by_label("X axis").select_option("Accumulated Volume")
    expect(plot).to_contain_text("Accumulated Volume")
    page.get_by_label("X axis").select_option("Run Time")
    expect(plot).to_contain_text("Run Time")

    # Force the waiting "1 End block" of Equilibration (confirmed first): the Load block starts.
    waiting = page.locator(
        '[data-testid="runlog-line"][data-state="running"]', has_text="1 End block"
    )
    waiting.get_by_role("button", name="Force").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("1 End block")
    shots(page, "force-confirmation")
    confirm.get_by_role("button", name="Force it now").click()
    expect(page.locator('[data-testid="runlog-line"]', has_text="Block: Load")).to_be_visible(
        timeout=10_000
    )
    expect(page.locator(".unit-head")).to_contain_text("Load")

    # The run-log filter.
    page.get_by_placeholder("Filter commands or users").fill("Inlet")
    expect(page.locator('[data-testid="runlog-line"]').first).to_contain_text("Inlet")
    for text in page.locator('[data-testid="runlog-line"]').all_inner_texts():
        assert "Inlet" in text
    page.get_by_placeholder("Filter commands or users").fill("")

    # A completed line is locked: an edit is refused with a message.
    editor = page.locator("[data-testid=method-editor] .cm-content")
    page.locator('.cm-line[data-state="completed"]', has_text="Batch: Demo capture").click()
    page.keyboard.press("End")
    page.keyboard.type("X")
    expect(
        page.get_by_text(re.compile(r"Line \d+ has (completed|started) and cannot be changed"))
    ).to_be_visible()
    expect(editor).not_to_contain_text("Demo captureX")

    # Edit while it runs: findings appear as you type, then a valid line is saved.
    page.locator(".cm-line", has_text="Mark: Done").click()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type("Frobnicate: 3")
    expect(page.locator('[data-testid="findings"]')).to_contain_text("Frobnicate", timeout=10_000)
    shots(page, "method-finding")
    page.keyboard.press("Shift+Home")
    page.keyboard.type("Mark: edited in the browser")
    expect(page.locator('[data-testid="findings"]')).to_contain_text(
        re.compile(r"No problems found|^0 errors"), timeout=10_000
    )
    version_before = page.locator('[data-testid="method-version"]').inner_text()
    page.get_by_role("button", name="Save method").click()
    expect(page.get_by_text(re.compile(r"Method saved \(version \d+\)"))).to_be_visible(
        timeout=10_000
    )
    expect(page.locator('[data-testid="method-version"]')).not_to_have_text(version_before)
    token = stack.login("alice")
    saved = stack.http("GET", f"/api/units/{quote(stack.unit_id, safe='')}/method", token=token)
    assert "Mark: Done\nMark: edited in the browser\nStop" in saved["text"]

    # Stop asks first; the dialog traps focus, Escape closes it and the run goes on.
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    for _ in range(5):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('dialog') !== null")
    shots(page, "stop-confirmation")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(stop).to_be_focused()
    expect(page.locator('[data-testid="unit-state"]')).to_have_text("Running")
    stop.click()
    page.get_by_role("button", name="Stop the run").click()
    expect(page.locator('[data-testid="unit-state"]')).to_have_text("Stopped", timeout=20_000)
    shots(page, "unit-stopped-after-run")
    assert page.errors == []


def test_finished_run_and_csv(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 768)
    login(page, "alice")
    page.get_by_role("link", name="Run history").click()
    rows = page.locator('[data-testid="run-row"]')
    expect(rows.first).to_be_visible(timeout=15_000)
    shots(page, "run-history")

    # Search narrows the list; a search for nonsense finds nothing.
    page.get_by_role("searchbox", name="Search").fill("no-such-run-anywhere")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.get_by_role("searchbox", name="Search").fill("Chromatography")
    page.get_by_role("button", name="Search").click()
    expect(rows.first).to_be_visible()

    rows.first.get_by_role("link").click()
    view = page.locator('[data-testid="run-view"]')
    expect(view).to_be_visible()
    expect(view).to_contain_text(
        "Mark: edited in the browser"
    )  # the method as run, with the live edit
    expect(page.locator('[data-testid="runlog-line"]').first).to_be_visible()
    expect(page.locator("canvas").first).to_be_visible()
    shots(page, "run-view")

    run_id = page.url.rsplit("/", 1)[-1]
    token = stack.login("alice")
    detail = stack.http("GET", f"/api/runs/{run_id}", token=token)
    assert detail["stopped"] is not None

    # The export is fetched with progress (streamed, no Content-Length) and saved as a Blob.
    download_button = page.get_by_role("button", name="Download CSV")
    expect(download_button).to_have_attribute("data-testid", "csv-download")
    with page.expect_download() as info:
        page.locator('[data-testid="csv-download"]').click()
    assert info.value.suggested_filename == f"{run_id}.csv"
    text = Path(info.value.path()).read_text(encoding="utf-8")
    data_lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    table = list(csv.reader(io.StringIO("\n".join(data_lines))))
    header, body = table[0], table[1:]
    assert header[:2] == ["UTC timestamp", "Run Time"]
    for column in (
        "PU01 [%]",
        "Inlet",
        "FT01 [L/h]",
        "PT01 [bar]",
        "UV01 [mAU]",
        "CT01 [mS/cm]",
        "Mark",
        "Accumulated Volume [L]",
    ):
        assert column in header, ", ".join(header)
    assert all(len(r) == len(header) for r in body)
    # The data log interval is 1 s and Run Time changes every sample: about one row per second.
    duration = detail["stopped"] - detail["started"]
    assert duration * 0.5 - 2 <= len(body) <= duration * 1.5 + 3, (len(body), duration)
    # The progress reached the end: the status names the rows received, the bar is full.
    progress = page.locator('[data-testid="csv-progress"]')
    expect(progress).to_have_attribute("data-state", "done")
    expect(progress).to_have_attribute("aria-live", "polite")
    expect(progress).to_contain_text(f"CSV downloaded: {len(body)} row")
    bar = page.get_by_role("progressbar", name="CSV download")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(download_button).to_be_enabled()
    expect(page.locator('[data-testid="csv-cancel"]')).to_have_count(0)
    shots(page, "run-view-csv-done")

    # Cancel while the export is under way (the request is held back), then an HTTP error.
    held: list[Any] = []
    page.route("**/api/runs/*/csv", lambda route: held.append(route))
    download_button.click()
    cancel = page.get_by_role("button", name="Cancel")
    expect(cancel).to_be_focused()
    expect(progress).to_have_attribute("data-state", "running")
    expect(progress).to_contain_text("Downloading CSV: 0 of ~")
    expect(download_button).to_be_disabled()
    page.keyboard.press("Enter")
    expect(progress).to_have_attribute("data-state", "cancelled")
    expect(progress).to_contain_text("CSV download cancelled")
    expect(download_button).to_be_focused()
    page.unroute("**/api/runs/*/csv")
    page.route(
        "**/api/runs/*/csv",
        lambda route: route.fulfill(status=403, json={"error": "no access in this test"}),
    )
    download_button.click()
    expect(page.locator('[data-testid="csv-error"]')).to_have_text(
        "CSV download failed (HTTP 403): no access in this test"
    )
    page.unroute("**/api/runs/*/csv")
    assert page.errors == []


def test_method_conflict(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 768)
    login(page, "alice")
    page.goto(unit_href(stack))
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text("Mark: Done")
    path = f"/api/units/{quote(stack.unit_id, safe='')}/method"
    bob = stack.login("bob")
    current = stack.http("GET", path, token=bob)

    # Alice edits; meanwhile Bob saves another version.
    page.locator(".cm-line", has_text="Mark: Done").click()
    page.keyboard.press("End")
    page.keyboard.type(" (mine)")
    expect(page.locator('[data-testid="method-version"]')).to_contain_text("unsaved changes")
    theirs = current["text"].replace("Mark: Done", "Mark: Done (theirs)")
    stack.http("PUT", path, {"text": theirs, "expected_version": current["version"]}, token=bob)
    expect(page.get_by_text("was saved by someone else while you were editing")).to_be_visible(
        timeout=10_000
    )

    # Saving shows the other version and lets her choose; she overwrites consciously.
    page.get_by_role("button", name="Save method").click()
    dialog = page.get_by_role("dialog", name="Someone else changed the method")
    expect(dialog).to_contain_text("Mark: Done (theirs)")
    expect(dialog.get_by_role("button", name="Keep editing")).to_be_focused()
    shots(page, "conflict")
    dialog.get_by_role("button", name="Overwrite with mine").click()
    expect(page.get_by_text(re.compile(r"Method saved \(version \d+\)"))).to_be_visible(
        timeout=10_000
    )
    final = stack.http("GET", path, token=bob)
    assert "Mark: Done (mine)" in final["text"] and "(theirs)" not in final["text"]
    assert final["version"] > current["version"] + 1


def tab_to(page: Any, text: str, limit: int = 80) -> None:
    """Press Tab until the focused element's text is `text`: proof it is reachable by keyboard."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if (
            page.evaluate("document.activeElement && document.activeElement.textContent.trim()")
            == text
        ):
            return
    raise AssertionError(f"{text!r} not reachable with Tab")


def test_keyboard_only_control(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 768)
    login(page, "alice")
    page.goto(unit_href(stack))
    state = page.locator('[data-testid="unit-state"]')
    expect(state).to_have_text("Stopped")
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_be_visible()

    tab_to(page, "Start")
    page.keyboard.press("Enter")
    expect(state).to_have_text("Running", timeout=15_000)
    page.locator("body").focus()
    tab_to(page, "Pause")
    page.keyboard.press("Enter")
    expect(state).to_have_text("Paused", timeout=10_000)
    page.locator("body").focus()
    tab_to(page, "Unpause")
    page.keyboard.press("Enter")
    expect(state).to_have_text("Running", timeout=10_000)

    # Restart asks first; Escape leaves everything as it was.
    page.locator("body").focus()
    tab_to(page, "Restart")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alertdialog")).to_contain_text("new run of the same method")
    page.keyboard.press("Escape")
    expect(page.get_by_role("alertdialog")).to_be_hidden()

    # Stop: Enter opens the confirmation with Cancel focused; Tab, Enter confirms.
    page.locator("body").focus()
    tab_to(page, "Stop")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alertdialog")).to_be_visible()
    shots(page, "keyboard-stop-dialog")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Stop the run")).to_be_focused()
    page.keyboard.press("Enter")
    expect(state).to_have_text("Stopped", timeout=20_000)


@pytest.mark.parametrize(
    "width,height,name",
    [(1366, 768, "laptop"), (768, 1024, "tablet"), (1024, 768, "tablet-landscape")],
)
def test_responsive_and_watchers(
    stack: Stack, new_page: Any, shots: Shots, width: int, height: int, name: str
) -> None:
    page = new_page(width, height)
    login(page, "alice")
    expect(page.locator('[data-testid="unit-card"]').first).to_be_visible()
    shots(page, f"{name}-dashboard")
    page.goto(unit_href(stack))
    expect(page.locator('[data-testid="unit-view"]')).to_be_visible()
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_be_visible()

    # Nothing is cut off sideways, and the controls are on screen without scrolling sideways.
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page is {overflow}px wider than the {name} viewport"
    for label in ("Start", "Pause", "Hold", "Stop", "Restart"):
        box = page.get_by_role("button", name=label, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width

    # Another operator opens the unit: the first sees who else is watching.
    other = new_page(1024, 768)
    login(other, "bob")
    other.goto(unit_href(stack))
    expect(page.locator('[data-testid="watchers"]')).to_contain_text("bob", timeout=10_000)
    expect(other.locator('[data-testid="watchers"]')).to_contain_text("alice", timeout=10_000)
    shots(page, f"{name}-unit")

    # Keyboard: the first Tab reaches the skip link, and focus is visible.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Skip to content" in focused
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_connection_loss_banner_and_recovery(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 768)
    login(page, "alice")
    page.goto(unit_href(stack))
    pv = page.locator('[data-testid="pv"][data-tag="FT01"]')
    expect(page.locator('[data-testid="unit-view"]')).to_be_visible()
    banner = page.locator('[data-testid="connection-banner"]')
    expect(banner).to_be_hidden()

    stack.stop_aggregator()
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("Connection to the server lost")
    expect(pv).to_have_attribute("data-stale", "true")
    shots(page, "connection-lost")

    stack.start_aggregator()
    stack.wait_unit_online()
    expect(banner).to_be_hidden(timeout=30_000)
    # Resubscribed: the unit's values are live again without a reload.
    expect(page.locator('[data-testid="unit-view"]')).to_contain_text("Live", timeout=15_000)
    shots(page, "connection-recovered")


AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
        }"""
    )
    return list(result)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core not installed: run `npm ci` in frontend/")
def test_accessibility_wcag_aa(stack: Stack, new_page: Any, shots: Shots) -> None:
    """axe-core's WCAG 2.1 A/AA rules (contrast, names, roles, labels) on every screen."""
    page = new_page(1366, 768)
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    problems = {"login": axe_violations(page)}
    login(page, "alice")
    expect(page.locator('[data-testid="run-row"]').first).to_be_visible()
    problems["dashboard"] = axe_violations(page)
    page.goto(unit_href(stack))
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_be_visible()
    expect(page.locator("canvas").first).to_be_visible()
    problems["unit"] = axe_violations(page)
    page.get_by_role("link", name="Run history").click()
    expect(page.locator('[data-testid="run-row"]').first).to_be_visible()
    problems["runs"] = axe_violations(page)
    page.locator('[data-testid="run-row"]').first.get_by_role("link").click()
    expect(page.locator('[data-testid="run-view"]')).to_be_visible()
    problems["run"] = axe_violations(page)
    shots(page, "run-view")
    found = {screen: v for screen, v in problems.items() if v}
    assert not found, "\n".join(
        f"{screen}: {line}" for screen, lines in found.items() for line in lines
    )


def test_engine_offline_greys_values(stack: Stack, new_page: Any, shots: Shots) -> None:
    """Last in the module: it stops the engine. Its unit turns Offline and every value greys out."""
    page = new_page(1366, 768)
    login(page, "alice")
    page.goto(unit_href(stack))
    pv = page.locator('[data-testid="pv"][data-tag="PT01"]')
    expect(pv).to_have_attribute("data-stale", "false", timeout=15_000)
    assert stack.engine is not None
    stop_process(stack.engine)
    expect(page.locator(".unit-head")).to_contain_text("Offline", timeout=30_000)
    expect(pv).to_have_attribute("data-stale", "true")
    expect(pv).to_contain_text("stale")
    expect(page.get_by_role("button", name="Start", exact=True)).to_be_disabled()
    shots(page, "unit-offline")
    page.get_by_role("link", name="Units").click()
    expect(page.locator('[data-testid="unit-card"]').first).to_contain_text("Offline")
    shots(page, "dashboard-offline")
