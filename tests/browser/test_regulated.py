"""Regulated records in Chromium (issue 16): over a real aggregator and the simulated engine, an
approver signs a method version on the Methods page (after its author created it and a reviewer
reviewed it over the API), and a reviewer releases a stopped run from the run view. What the
page shows (printed name, meaning, UTC time; released by) is what the API returns. The new pages
pass the same axe checks as every other screen."""

from __future__ import annotations

import subprocess
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import METHOD, ROOT, Shots, Stack, _tool, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in the test extra
    pytest.skip("playwright is not installed", allow_module_level=True)

AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"

# name: (role, password, printed name)
SIGNERS = {
    "anne": ("operator", "anne-author-secret-1", "Anne Author"),
    "rita": ("operator", "rita-reviewer-secret-1", "Rita Reviewer"),
    "paul": ("operator", "paul-approver-secret-1", "Paul Approver"),
}
ADMIN = ("alice", "alice-secret-1")


def axe_violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
        }"""
    )
    return list(result)


def check_axe(page: Any, where: str) -> None:
    if AXE.exists():
        assert axe_violations(page) == [], where


@pytest.fixture(scope="module")
def signers(stack: Stack) -> dict[str, str]:
    """The three signers, with printed names, added by the CLI next to the running aggregator;
    returns their API tokens."""
    for name, (role, password, full_name) in SIGNERS.items():
        subprocess.run(
            [
                _tool("setpoint-aggregator"),
                "user",
                "add",
                name,
                "--role",
                role,
                "--full-name",
                full_name,
                "--password-stdin",
                "--data-dir",
                str(stack.tmp / "agg"),
            ],
            input=f"{password}\n".encode(),
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    return {
        name: str(
            stack.http("POST", "/api/auth/login", {"username": name, "password": pw})["token"]
        )
        for name, (_, pw, _) in SIGNERS.items()
    }


def login_as(page: Any, name: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Units").wait_for()


def sign_in_dialog(page: Any, password: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Password").fill(password)
    dialog.get_by_role("button", name="Sign", exact=True).click()
    expect(dialog).to_have_count(0)


def test_approver_signs_a_method_version(
    stack: Stack, signers: dict[str, str], new_page: Any, shots: Shots
) -> None:
    text = METHOD.read_text()
    created = stack.http("POST", "/api/methods", {"name": "Capture", "text": text}, signers["anne"])
    method_id = created["id"]
    edited = text.replace("Flow: 60 L/h", "Flow: 50 L/h")
    stack.http(
        "PUT", f"/api/methods/{method_id}", {"text": edited, "expected_version": 1}, signers["anne"]
    )
    record = {"kind": "method_version", "id": str(method_id), "version": 2}
    for name, meaning in (("anne", "authored"), ("rita", "reviewed")):
        body = {"record": record, "meaning": meaning, "password": SIGNERS[name][1]}
        stack.http("POST", "/api/signatures", body, signers[name])

    page = new_page(1366, 900)
    login_as(page, "paul", SIGNERS["paul"][1])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Methods").click()
    row = page.locator('[data-testid="methods-table"] tr[data-method="Capture"]')
    expect(row).to_contain_text("Reviewed")
    check_axe(page, "methods list")
    row.get_by_role("link", name="Capture").click()

    v2 = page.locator('[data-testid="versions-table"] tr[data-version="2"]')
    expect(v2).to_have_attribute("data-state", "reviewed")
    expect(v2.locator('[data-testid="signature"]')).to_have_count(2)
    # the diff between the two versions shows the changed line on each side
    diff = page.locator('[data-testid="method-diff"]')
    expect(diff.locator('[data-kind="added"]')).to_contain_text("Flow: 50 L/h")
    expect(diff.locator('[data-kind="removed"]')).to_contain_text("Flow: 60 L/h")
    # paul may only approve; the author's own "authored" is not offered to him
    expect(v2.get_by_role("button", name="Sign as Authored, version 2")).to_have_count(0)
    check_axe(page, "method page")
    shots(page, "method-reviewed")

    v2.get_by_role("button", name="Sign as Approved, version 2").click()
    check_axe(page, "sign dialog")
    shots(page, "sign-dialog", full_page=False)
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Password").fill("not-the-password")
    dialog.get_by_role("button", name="Sign", exact=True).click()
    expect(dialog.locator('[data-testid="sign-error"]')).to_contain_text("wrong password")
    sign_in_dialog(page, SIGNERS["paul"][1])

    expect(v2).to_have_attribute("data-state", "approved")
    shown = v2.locator('[data-testid="signature"][data-meaning="approved"]')
    expect(shown).to_have_count(1)
    api = stack.http("GET", f"/api/methods/{method_id}", token=signers["paul"])
    approved = [s for s in api["versions"][1]["signatures"] if s["meaning"] == "approved"]
    assert len(approved) == 1
    sig = approved[0]
    assert api["versions"][1]["state"] == "approved"
    assert (sig["user"], sig["full_name"], sig["valid"]) == ("paul", "Paul Approver", True)
    expect(shown.locator('[data-field="full_name"]')).to_have_text(sig["full_name"])
    expect(shown.locator('[data-field="meaning"]')).to_have_text(sig["meaning"])
    expect(shown.locator('[data-field="time_utc"]')).to_have_text(sig["time_utc"])
    assert sig["time_utc"].endswith(" UTC")
    shots(page, "method-approved")

    # load the approved version onto the unit: the unit view names it, its version and state
    load = page.locator("section", has=page.get_by_role("heading", name="Load onto a unit"))
    load.get_by_label("Version").select_option("2")
    load.get_by_role("button", name="Load onto unit").click()
    expect(page.get_by_text("Capture version 2 loaded onto")).to_be_visible()
    page.goto(f"/#/units/{quote(stack.unit_id, safe='')}")
    source = page.locator('[data-testid="method-source"]')
    expect(source.locator('[data-field="name"]')).to_have_text("Capture")
    expect(source.locator('[data-field="version"]')).to_have_text("2")
    expect(source.locator('[data-field="state"]')).to_have_text("Approved")
    unit = quote(stack.unit_id, safe="")
    api_source = stack.http("GET", f"/api/units/{unit}/method/source", token=signers["paul"])
    assert api_source["source"]["name"] == "Capture"
    assert (api_source["source"]["version"], api_source["source"]["state"]) == (2, "approved")
    assert page.errors == []


def _stopped_run(stack: Stack, token: str) -> str:
    """Start the unit's method over the API, stop it, and wait until the run is stored stopped."""
    unit = quote(stack.unit_id, safe="")
    stack.http("POST", f"/api/units/{unit}/control", {"action": "Start"}, token)

    def running() -> str | None:
        run_id = stack.http("GET", f"/api/units/{unit}", token=token).get("run_id")
        return str(run_id) if run_id else None

    run_id: str = wait_for(running, 20, "the run to start")
    stack.http("POST", f"/api/units/{unit}/control", {"action": "Stop"}, token)
    wait_for(
        lambda: stack.http("GET", f"/api/runs/{quote(run_id, safe='')}", token=token)["stopped"],
        20,
        "the run to be stored as stopped",
    )
    return run_id


def test_reviewer_releases_a_stopped_run(
    stack: Stack, signers: dict[str, str], new_page: Any, shots: Shots
) -> None:
    run_id = _stopped_run(stack, signers["anne"])
    page = new_page(1366, 900)
    login_as(page, "rita", SIGNERS["rita"][1])
    page.goto(f"/#/runs/{quote(run_id, safe='')}")
    record = page.locator('[data-testid="run-record"]')
    expect(record.locator('[data-testid="release-status"]')).to_have_text("Not released")
    rid = quote(run_id, safe="")
    expect(record.get_by_role("link", name="Batch report (HTML)")).to_have_attribute(
        "href", f"/api/runs/{rid}/report"
    )
    expect(record.get_by_role("link", name="Batch report (PDF)")).to_have_attribute(
        "href", f"/api/runs/{rid}/report.pdf"
    )
    check_axe(page, "run view with its record")

    record.get_by_role("button", name="Release").click()
    sign_in_dialog(page, SIGNERS["rita"][1])

    status = record.locator('[data-testid="release-status"]')
    expect(status).to_contain_text("Released by")
    sigs = stack.http("GET", f"/api/runs/{rid}/signatures", token=signers["rita"])
    released = [s for s in sigs if s["meaning"] == "released"]
    assert len(released) == 1
    sig = released[0]
    assert (sig["user"], sig["full_name"], sig["valid"]) == ("rita", "Rita Reviewer", True)
    expect(status.locator('[data-field="full_name"]')).to_have_text(sig["full_name"])
    expect(status.locator('[data-field="user"]')).to_have_text(sig["user"])
    expect(status.locator('[data-field="time_utc"]')).to_have_text(sig["time_utc"])
    shown = record.locator('[data-testid="signature"][data-meaning="released"]')
    expect(shown.locator('[data-field="time_utc"]')).to_have_text(sig["time_utc"])
    expect(record.get_by_role("button", name="Release")).to_be_disabled()
    shots(page, "run-released")

    # the report says the same
    report = page.request.get(f"/api/runs/{rid}/report")
    assert report.ok
    assert f"RELEASED by {sig['full_name']}" in report.text()
    assert page.errors == []


def test_audit_page_for_admins(
    stack: Stack, signers: dict[str, str], new_page: Any, shots: Shots
) -> None:
    page = new_page(1366, 900)
    login_as(page, *ADMIN)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    page.get_by_label("User", exact=True).fill("paul")
    page.get_by_label("Action").fill("signature")
    page.get_by_role("button", name="Search").click()
    rows = page.locator('[data-testid="audit-table"] tbody tr')
    expect(rows.first).to_have_attribute("data-action", "signature")
    token = stack.login("alice")
    api = stack.http("GET", "/api/audit/search?user=paul&action=signature", token=token)
    expect(rows).to_have_count(len(api["items"]))
    csv = page.locator('[data-testid="audit-csv"]')
    expect(csv).to_have_attribute("href", "/api/audit/export.csv?user=paul&action=signature")
    check_axe(page, "audit page")
    shots(page, "audit")

    # an operator has no Audit link
    other = new_page(1366, 900)
    login_as(other, "paul", SIGNERS["paul"][1])
    expect(
        other.get_by_role("navigation", name="Main").get_by_role("link", name="Audit")
    ).to_have_count(0)
