"""An alarm in Chromium, end to end: a real aggregator and the simulated chromatography engine;
`Simulate: PT01 = 4 bar` raises "PT01 high" (priority high, 2 s on-delay) in the engine, the
banner on every page counts it, the operator acknowledges it on the Alarms page, and the journal
shows who did. The Alarms page passes the same axe checks (contrast) as every other screen."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import ROOT, Shots, Stack, login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)

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


def test_alarm_appears_in_the_banner_and_is_acknowledged(
    stack: Stack, new_page: Any, shots: Shots
) -> None:
    page = new_page(1366, 768)
    login(page, "bob")
    expect(page.locator('[data-testid="unit-card"]').first).to_be_visible()
    expect(page.locator('[data-testid="alarm-banner"]')).to_have_count(0)

    token = stack.login("bob")
    unit = quote(stack.unit_id, safe="")
    stack.http("POST", f"/api/units/{unit}/inject", {"pcode": "Simulate: PT01 = 4 bar"}, token)

    banner = page.locator('[data-testid="alarm-banner"]')
    expect(banner).to_be_visible(timeout=20_000)  # after the alarm's 2 s on-delay
    expect(banner).to_contain_text("1 unacknowledged alarm")
    expect(banner.locator('[data-priority="high"]')).to_have_text("1 high")
    shots(page, "banner")

    banner.get_by_role("link", name="Show alarms").click()
    row = page.locator('[data-testid="active-alarms"] tr[data-alarm="PT01 high"]')
    expect(row).to_have_attribute("data-state", "unack_active")
    expect(row).to_contain_text("Column pressure high")
    if AXE.exists():
        assert axe_violations(page) == []
    shots(page, "alarms-page")

    row.get_by_role("button", name="Acknowledge PT01 high").click()
    expect(row).to_have_attribute("data-state", "ack_active", timeout=10_000)
    expect(banner).to_have_count(0)
    journal = page.locator('[data-testid="alarm-journal"]')
    ack = journal.locator('tr[data-cause="ack"]').first
    expect(ack).to_contain_text("bob", timeout=10_000)
    expect(journal.locator('tr[data-state="unack_active"]').first).to_contain_text("PT01 high")
    shots(page, "acknowledged")

    # the operator's action is in the audit trail
    audit = stack.http("GET", "/api/audit?limit=50", None, stack.login("alice"))
    assert any(e["action"] == "alarm ack" and e["user"] == "bob" for e in audit["items"])

    stack.http("POST", f"/api/units/{unit}/inject", {"pcode": "Simulate off: PT01"}, token)
    expect(page.locator('[data-testid="no-alarms"]')).to_be_visible(timeout=20_000)
    assert page.errors == []
