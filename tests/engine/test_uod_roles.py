"""`require_roles`: control roles (the old positional form, unchanged) and view roles, as they
reach the aggregator in the UOD description; a malformed call names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.uod import UodError, load_uod

SOURCE = """\
from engine.sim.chromatography import ChromatographyModel
from engine.uod import UodBuilder


def create():
    uod = UodBuilder("Roles")
    uod.simulated(ChromatographyModel, registers={"FT01": "FT01"})
    uod.reading("FT01", unit="L/h")
    ROLES
    return uod.build()
"""


def roles_of(tmp_path: Path, call: str) -> tuple[list[str], list[str]]:
    path = tmp_path / "unit.py"
    path.write_text(SOURCE.replace("ROLES", call))
    described = load_uod(path).describe()
    return described.required_roles, described.view_roles


@pytest.mark.parametrize(
    ("call", "control", "view"),
    [
        ("pass", [], []),
        ('uod.require_roles("operator")', ["operator"], []),
        ('uod.require_roles("operator", "qa")', ["operator", "qa"], []),
        ('uod.require_roles(control="operator", view="viewer")', ["operator"], ["viewer"]),
        ('uod.require_roles("admin", view=["operator", "qa"])', ["admin"], ["operator", "qa"]),
        (
            'uod.require_roles(control="operator"); uod.require_roles(view="viewer")',
            ["operator"],
            ["viewer"],
        ),
    ],
)
def test_roles_reach_the_description(
    tmp_path: Path, call: str, control: list[str], view: list[str]
) -> None:
    assert roles_of(tmp_path, call) == (control, view)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'uod.require_roles(view="viewer")',
            "require_roles: view roles need control roles too, e.g. "
            'require_roles(control="operator", view="viewer")',
        ),
        ('uod.require_roles("operator", view="")', "require_roles: a role must be a name, not ''"),
        ("uod.require_roles(control=[3])", "require_roles: a role must be a name, not 3"),
    ],
)
def test_a_bad_call_names_its_line(tmp_path: Path, call: str, message: str) -> None:
    path = tmp_path / "unit.py"
    path.write_text(SOURCE.replace("ROLES", call))
    with pytest.raises(UodError) as info:
        load_uod(path)
    assert (info.value.line, info.value.message) == (9, message)
