from __future__ import annotations

from aggregator.api.roles import has_role, may_see


def test_roles_include_the_ones_before() -> None:
    assert has_role("admin", "operator") and has_role("operator", "viewer")
    assert not has_role("viewer", "operator")
    assert not has_role("nobody", "viewer")


def test_required_roles_narrow_a_unit() -> None:
    assert may_see("viewer", [])
    assert not may_see("viewer", ["operator"])
    assert may_see("operator", ["operator"])
    assert not may_see("operator", ["chemist"])
    assert may_see("admin", ["chemist"])
