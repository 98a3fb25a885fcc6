"""Simulate in the method editor (issue 18 item 4): the method runs on the unit's process model
and the predicted duration, marks and dashed traces appear before Start; nothing on the unit
changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Shots, Stack, login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)


def test_simulate_shows_the_predicted_marks(stack: Stack, new_page: Any, shots: Shots) -> None:
    page = new_page(1366, 900)
    login(page, "bob")
    page.locator('[data-testid="unit-card"]', has_text="Chromatography").get_by_role(
        "link", name="Chromatography"
    ).click()
    expect(page.locator("[data-testid=method-editor] .cm-content")).to_contain_text(
        "Block: Equilibration"
    )
    page.get_by_role("button", name="Simulate").click()
    marks = page.locator('[data-testid="predicted-mark"]')
    expect(marks).to_have_count(6, timeout=30_000)
    expect(marks.nth(1)).to_contain_text("Load")
    expect(marks.last).to_contain_text("Done")
    expect(page.locator('[data-testid="predicted-duration"]')).to_contain_text("(Stopped)")
    traces = page.locator('[data-testid="predicted-plot"] path[stroke-dasharray]')
    expect(traces).to_have_count(4)  # UV01, CT01, FT01, PT01
    shots(page, "simulated")
    expect(page.locator('[data-testid="unit-state"]')).to_have_text("Stopped")

    # a method with an error is refused with the reason, and no prediction is shown
    page.locator("[data-testid=method-editor] .cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("Flw: 1\n")
    page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_role("alert").filter(has_text="simulation failed")).to_be_visible(
        timeout=30_000
    )
    expect(marks).to_have_count(0)
