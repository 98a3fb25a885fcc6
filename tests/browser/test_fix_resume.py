"""Issue 20 end to end, on a real aggregator and a real engine (subprocesses) whose unit's Prime
command fails mid-way above 100 mL (tests/fixtures/faulty_skid.py):

- a failed command is fixed and resumed to Stop over the API; the stored run log shows the failed
  attempt, the edit (method version) and the retry, the run keeps both method versions, and the
  Resume is audited;
- in Chromium, a method typed with completions only (names, tags, operators, units, values picked
  from the list; only numbers and free text typed) runs to Stop;
- the same fix and resume with the web UI's buttons;
- diagnostics as you type on a 2,000-line method appear well under 300 ms (figure recorded in
  bench/README.md).

The tests share one stack and run in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import ROOT, Stack, login, require_browser, running_stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)

FAULTY_UOD = ROOT / "tests" / "fixtures" / "faulty_skid.py"
METHOD = "Mark: start\nPrime: 500 mL\nWait: 1 s\nMark: after\nStop"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own stack, the faulty skid (overrides conftest's, so new_page opens pages
    on it)."""
    require_browser()
    tmp = tmp_path_factory.mktemp("faulty")
    method = tmp / "faulty.pcode"
    method.write_text(METHOD + "\n")
    with running_stack(
        tmp, "fix-resume", uod=FAULTY_UOD, method=method, unit_name="Faulty skid"
    ) as s:
        yield s


def unit_path(stack: Stack, tail: str = "") -> str:
    return f"/api/units/{quote(stack.unit_id, safe='')}{tail}"


def put_method(stack: Stack, token: str, text: str) -> None:
    """Save `text` as the unit's method over the API, over whatever version it has now."""
    current = stack.http("GET", unit_path(stack, "/method"), token=token)
    body = {"text": text, "expected_version": current["version"]}
    stack.http("PUT", unit_path(stack, "/method"), body, token)


def unit_state(stack: Stack, token: str) -> dict[str, Any]:
    return dict(stack.http("GET", unit_path(stack), token=token))


def wait_state(stack: Stack, token: str, state: str, timeout: float = 20) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (u := unit_state(stack, token))["state"] == state and u,
            timeout,
            f"the unit to be {state}",
            stack.engine,
        )
    )


def wait_run_done(stack: Stack, token: str, previous: str | None) -> None:
    """A run other than `previous` has run its Stop line and the unit is Stopped again."""

    def done() -> bool:
        log = stack.http("GET", unit_path(stack, "/runlog"), token=token)
        stopped = any(x["text"] == "Stop" and x["state"] == "completed" for x in log["lines"])
        return bool(
            log["run_id"] != previous and stopped and unit_state(stack, token)["state"] == "Stopped"
        )

    wait_for(done, 30, "the run to reach Stop", stack.engine)


def failed_line(stack: Stack, token: str, text: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        lines = stack.http("GET", unit_path(stack, "/runlog"), token=token)["lines"]
        hits = [x for x in lines if x["text"] == text and x["state"] == "failed"]
        return hits[-1] if hits else None

    return dict(wait_for(find, 20, f"'{text}' to fail", stack.engine))


def test_a_failed_command_fixed_and_resumed_over_the_api(stack: Stack) -> None:
    bob = stack.login("bob")
    before = stack.http("GET", unit_path(stack, "/method"), token=bob)
    stack.http("POST", unit_path(stack, "/control"), {"action": "Start"}, bob)
    failed = failed_line(stack, bob, "Prime: 500 mL")
    assert "prime valve stuck above 100 mL" in failed["error"]
    paused = wait_state(stack, bob, "Paused")
    assert paused["method_status"] == "Error"
    run_id = paused["run_id"]

    fixed = METHOD.replace("Prime: 500 mL", "Prime: 50 mL")
    saved = stack.http(
        "PUT",
        unit_path(stack, "/method"),
        {"text": fixed, "expected_version": before["version"]},
        bob,
    )
    stack.http("POST", unit_path(stack, f"/runlog/{failed['id']}/resume"), {}, bob)
    wait_state(stack, bob, "Stopped")

    alice = stack.login("alice")
    run = wait_for(
        lambda: (r := stack.http("GET", f"/api/runs/{run_id}", token=alice))["stopped"] and r,
        20,
        "the run to be stored as stopped",
    )
    log = [(x["text"], x["state"], x["user"]) for x in run["runlog"]]
    version = saved["version"]
    expected = [
        ("Start", "completed", "bob"),
        ("Mark: start", "completed", None),
        ("Prime: 500 mL", "failed", None),
        (f"Method version {version}", "completed", "bob"),
        (f"Resume from line 2 (method version {version})", "completed", "bob"),
        ("Prime: 50 mL", "completed", None),
        ("Mark: after", "completed", None),
        ("Stop", "completed", None),
    ]
    assert [x for x in log if x in expected] == expected, log
    retry = next(x for x in run["runlog"] if x["text"] == "Prime: 50 mL")
    assert retry["retry_of"] == failed["id"] and retry["line_id"] == failed["line_id"]
    assert [m["version"] for m in run["methods"]] == [before["version"], version]
    assert [line["text"] for line in run["methods"][-1]["lines"]][1] == "Prime: 50 mL"

    audit = stack.http("GET", "/api/audit?limit=20", token=alice)["items"]
    resume = next(e for e in audit if e["action"] == "resume")
    assert resume["user"] == "bob" and resume["run_id"] == run_id
    assert resume["new"] == {"line": failed["id"], "method_version": version, "result": "ok"}


def pick(page: Any, typed: str, option: str) -> None:
    """Type a few characters, wait for `option` in the completion list, choose it (Enter)."""
    if typed:
        page.keyboard.type(typed)
    listbox = page.locator(".cm-tooltip-autocomplete")
    wanted = re.compile(f"^{re.escape(option)}$")
    expect(listbox.locator(".cm-completionLabel").filter(has_text=wanted)).to_be_visible()
    chosen = listbox.locator("li[aria-selected=true]")
    for _ in range(12):
        if chosen.locator(".cm-completionLabel").inner_text() == option:
            break
        page.keyboard.press("ArrowDown")
    expect(chosen.locator(".cm-completionLabel")).to_have_text(option)
    # CodeMirror ignores Enter on a list shown for less than its interactionDelay (75 ms), so
    # that a list popping up under fast typing is not picked by accident: wait until it is older.
    page.wait_for_function(
        "() => performance.now() - window.__listChanged > 100", polling="raf", timeout=5000
    )
    page.keyboard.press("Enter")


def open_unit(page: Any, stack: Stack) -> None:
    login(page, "bob")
    page.goto(f"/#/units/{quote(stack.unit_id, safe='')}")
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_be_visible()
    page.evaluate(
        """() => {
          window.__listChanged = 0;
          new MutationObserver((records) => {
            if (records.some((r) => r.target.closest?.('.cm-tooltip-autocomplete') ||
                [...r.addedNodes].some((n) => n.querySelector?.('.cm-tooltip-autocomplete'))))
              window.__listChanged = performance.now();
          }).observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )


def test_a_method_typed_with_completions_only_runs(stack: Stack, new_page: Any) -> None:
    page = new_page(1366, 900)
    open_unit(page, stack)
    editor = page.locator("[data-testid=method-editor] .cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")

    pick(page, "Ala", "Alarm")  # -> "Alarm: ", tags offered at once
    pick(page, "PT", "PT01")
    pick(page, " ", ">")  # the operators after a tag
    pick(page, "4 ", "bar")  # units compatible with PT01, its own first
    page.keyboard.press("Enter")
    page.keyboard.type("    ")
    pick(page, "Ma", "Mark")  # in an alarm body Mark ranks before Macro (completions.ts)
    page.keyboard.type("high pressure")
    page.keyboard.press("Enter")
    page.keyboard.press("Backspace")  # out of the alarm's body (one indent unit)
    pick(page, "Inl", "Inlet")
    pick(page, "", "VA02")  # the command's choices, in its order
    page.keyboard.press("Enter")
    pick(page, "PU", "PU01")
    pick(page, "20 ", "%")
    page.keyboard.press("Enter")
    pick(page, "Pri", "Prime")
    pick(page, "50 ", "mL")
    page.keyboard.press("Enter")
    pick(page, "Wa", "Wait")
    pick(page, "1 ", "s")
    page.keyboard.press("Enter")
    pick(page, "Sto", "Stop")

    typed = "\n".join(
        [
            "Alarm: PT01 > 4 bar",
            "    Mark: high pressure",
            "Inlet: VA02",
            "PU01: 20 %",
            "Prime: 50 mL",
            "Wait: 1 s",
            "Stop",
        ]
    )
    assert (
        page.evaluate(
            "() => [...document.querySelectorAll('[data-testid=method-editor] .cm-line')]"
            ".map(l => l.textContent).join('\\n')"
        )
        == typed
    )
    expect(page.locator('[data-testid="findings"]')).to_contain_text(
        "No problems found", timeout=10_000
    )
    page.get_by_role("button", name="Save method").click()
    expect(page.get_by_text(re.compile(r"Method saved \(version \d+\)"))).to_be_visible()
    bob = stack.login("bob")
    previous = stack.http("GET", unit_path(stack, "/runlog"), token=bob)["run_id"]
    page.get_by_role("button", name="Start", exact=True).click()
    wait_run_done(stack, bob, previous)
    lines = page.locator('[data-testid="runlog-line"]')
    expect(lines.filter(has_text="Inlet: VA02")).to_have_count(1)
    expect(lines.filter(has_text="PU01: 20 %")).to_have_count(1)
    expect(lines.filter(has_text="Stop")).not_to_have_count(0)
    assert page.errors == []


def test_fix_and_resume_with_the_buttons(stack: Stack, new_page: Any) -> None:
    bob = stack.login("bob")
    put_method(stack, bob, METHOD)
    page = new_page(1366, 900)
    open_unit(page, stack)
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text("Prime: 500 mL")
    page.get_by_role("button", name="Start", exact=True).click()
    banner = page.locator('[data-testid="failed-line"]')
    expect(banner).to_contain_text("Line 2 failed", timeout=20_000)
    expect(banner).to_contain_text("prime valve stuck above 100 mL")

    page.locator("[data-testid=method-editor] .cm-line", has_text="Prime: 500 mL").click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")
    page.keyboard.type("Prime: 60 mL")
    page.keyboard.press("Escape")  # close a completion list, if one opened
    page.get_by_role("button", name="Save method").click()
    expect(page.get_by_text(re.compile(r"Method saved \(version \d+\)"))).to_be_visible()
    expect(banner).to_contain_text("It now reads Prime: 60 mL")
    page.get_by_role("button", name="Resume from line 2").click()
    wait_state(stack, bob, "Stopped")
    expect(banner).to_have_count(0)
    lines = page.locator('[data-testid="runlog-line"]')
    expect(
        lines.filter(has_text=re.compile(r"Resume from line 2 \(method version \d+\)"))
    ).to_have_count(1)
    expect(lines.filter(has_text="Prime: 60 mL")).to_have_count(1)


def test_diagnostics_as_you_type_on_a_long_method(stack: Stack, new_page: Any) -> None:
    blocks = [
        "Block: Step {n}",
        "    Inlet: VA01",
        "    PU01: 20 %",
        "    Watch: UV01 > 500 mAU",
        "        Mark: Peak {n}",
        "    Wait: 1 s",
        "    End block",
    ]
    lines: list[str] = []
    n = 0
    while len(lines) < 2000:
        n += 1
        lines.extend(x.replace("{n}", str(n)) for x in blocks)
    text = "\n".join(lines[:1995] + ["Stop"] * 5)
    put_method(stack, stack.login("bob"), text)
    page = new_page(1366, 900)
    open_unit(page, stack)
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text("Step 1")
    # A line near the middle gets a misspelt instruction by one typed character, measured in
    # the page from the keydown to the error's underline (the engine's own check answers later;
    # this is what the operator sees as they type).
    target = "Mark: Peak 143"  # line 999
    page.locator("[data-testid=method-editor] .cm-scroller").evaluate(
        "el => { el.scrollTop = el.scrollHeight * 998 / 2000 - el.clientHeight / 2 }"
    )
    page.locator("[data-testid=method-editor] .cm-line", has_text=target).click()
    page.keyboard.press("Home")
    page.evaluate(
        """() => {
          window.__typed = null; window.__shown = null;
          const editor = document.querySelector('[data-testid=method-editor]');
          editor.addEventListener('keydown', () => { window.__typed ??= performance.now(); }, true);
          new MutationObserver(() => {
            if (window.__typed !== null && window.__shown === null &&
                editor.querySelector('.cm-lintRange-error')) window.__shown = performance.now();
          }).observe(editor, { subtree: true, childList: true, attributes: true });
        }"""
    )
    page.keyboard.type("x")  # "xMark: ...": an unknown instruction
    wait_for(lambda: page.evaluate("window.__shown"), 10, "the underline")
    elapsed = page.evaluate("window.__shown - window.__typed")
    # The time is reported, not asserted (a timing threshold fails on a busy machine, not on
    # a regression): frontend/src/editor/diagnostics.bench.ts measures it, bench/README.md.
    print(f"\nkeystroke to underline on a 2,000-line method: {elapsed:.0f} ms")
    edited = page.locator("[data-testid=method-editor] .cm-line", has_text="xMark: Peak 143")
    expect(edited.locator(".cm-lintRange-error")).to_have_count(1)
    expect(page.locator("[data-testid=method-editor] .cm-lintRange-error")).to_have_count(1)
