"""Permissions as metadata: per role and object, what may be created, read, edited,
deleted and exported, over which records (scope), and which fields are hidden or read-only.

Compiled with the object. A formula that reads a field hidden from a role is hidden from
that role too, so a hidden value never leaks through a computed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

SCOPES = ("none", "own", "subordinates", "team", "all")
ADMIN_ROLE = "admin"


def _scope(value: Any) -> str:
    if value is True:
        return "all"
    if value is False or value is None:
        return "none"
    return value


@dataclass(frozen=True)
class RoleAccess:
    create: bool = False
    read: str = "none"
    edit: str = "none"
    delete: str = "none"
    export: bool = False
    hidden: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    transfer: bool = False  # may give records to any owner (see engine.records.owners)


FULL = RoleAccess(True, "all", "all", "all", True, transfer=True)
NONE = RoleAccess()


def widest(a: str, b: str) -> str:
    return a if SCOPES.index(a) >= SCOPES.index(b) else b


def combine(accesses: list[RoleAccess]) -> RoleAccess:
    """What a user with several roles may do: the most any of them allows. A field is hidden
    (read-only) only if every role that can read the object hides it (makes it read-only)."""
    if not accesses:
        return NONE
    readers = [a for a in accesses if a.read != "none"] or accesses
    read, edit, delete = "none", "none", "none"
    for a in accesses:
        read, edit, delete = widest(read, a.read), widest(edit, a.edit), widest(delete, a.delete)
    hidden = frozenset.intersection(*(a.hidden for a in readers))
    read_only = frozenset.intersection(*(a.read_only | a.hidden for a in readers)) - hidden
    return RoleAccess(any(a.create for a in accesses), read, edit, delete, any(a.export for a in accesses),
                      hidden, read_only, any(a.transfer for a in accesses))


@dataclass(frozen=True)
class ObjectPermissions:
    """Access by role for one object. Roles not listed get nothing; `admin` gets everything."""

    by_role: Mapping[str, RoleAccess] = field(default_factory=lambda: MappingProxyType({}))

    def for_roles(self, roles: frozenset[str]) -> RoleAccess:
        if ADMIN_ROLE in roles:
            return FULL
        return combine([self.by_role[r] for r in roles if r in self.by_role])


def compile_permissions(ctx, compiled_fields) -> ObjectPermissions:
    raw = ctx.shell.data.get("permissions") or {}
    fields = ctx.shell.fields
    by_role = {}
    for role, spec in raw.items():
        where = ("permissions", role)
        if role == ADMIN_ROLE:
            ctx.problem("the admin role always has full access; do not list it", where)
            continue
        hidden, read_only = set(), set()
        for name, level in (spec.get("fields") or {}).items():
            if name not in fields:
                ctx.problem(f"unknown field {name!r}", where + ("fields", name))
            elif fields[name].get("required") and level == "hidden" and spec.get("create"):
                ctx.problem(f"{name!r} is required, so a role that creates records cannot have it hidden",
                            where + ("fields", name))
            (hidden if level == "hidden" else read_only).add(name)
        hidden |= _formulas_reading(compiled_fields, hidden)
        by_role[role] = RoleAccess(bool(spec.get("create", False)), _scope(spec.get("read")), _scope(spec.get("edit")),
                                   _scope(spec.get("delete")), bool(spec.get("export", False)),
                                   frozenset(hidden), frozenset(read_only - hidden), bool(spec.get("transfer", False)))
    return ObjectPermissions(MappingProxyType(by_role))


def _formulas_reading(compiled_fields, hidden: set[str]) -> set[str]:
    """Formula fields that read a hidden field (directly or through another formula)."""
    formulas = {f.name: f.expression.fields for f in compiled_fields if f.type == "formula" and f.expression}
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, reads in formulas.items():
            if name not in hidden and name not in found and reads & (hidden | found):
                found.add(name)
                changed = True
    return found
