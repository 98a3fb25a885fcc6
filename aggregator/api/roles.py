"""Roles and who may see or control a unit.

Each role includes the ones before it. A UOD's `required_roles` narrows a unit further: the user
needs one of them (by rank, so an operator satisfies a unit that requires viewer), or a custom
role name that only admins satisfy. Admins always may, so a lab can never lock itself out.

`required_roles` are the roles that control the unit; without `view_roles` they are also the only
ones that see it (the original meaning, kept for UODs written before view roles existed). A user
who holds one of the `view_roles` sees the unit and its runs, read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeGuard

Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


def is_role(name: str) -> TypeGuard[Role]:
    """Whether a stored role name is one of the three (the database column is free text)."""
    return name in ROLE_RANK


@dataclass(frozen=True)
class ApiUser:
    id: int
    name: str
    role: Role


def has_role(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK.get(needed, 99)


def may_control(role: str, required_roles: Iterable[str]) -> bool:
    """The unit's part of control; the operator role is needed as well (need_operator)."""
    required = list(required_roles)
    if not required or role == "admin":
        return True
    return any(has_role(role, needed) for needed in required)


def may_see(role: str, required_roles: Iterable[str], view_roles: Iterable[str] = ()) -> bool:
    return may_control(role, required_roles) or any(has_role(role, r) for r in view_roles)
