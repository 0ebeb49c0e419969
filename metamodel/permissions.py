"""Permissions as metadata: per role and object, what may be created, read, edited,
deleted and exported, over which records (scope), and which fields are hidden or read-only.

Compiled with the object (the fields each role hides), then completed over the whole model
by metamodel.concealment: anything computed from a hidden value is hidden from the same
roles, so a hidden value never leaks through a computed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

SCOPES = ("none", "own", "subordinates", "team", "all")
ADMIN_ROLE = "admin"
OTHER_ROLES = "*"  # stands for every role no permissions block names (role names cannot be "*")


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
    transfer: bool = False  # may give records to any owner (see engine.security.owners)
    oracles: frozenset[str] = frozenset()  # validation rules that read a value hidden from the role


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
    oracles = frozenset.intersection(*(a.oracles for a in readers))
    combined = RoleAccess(any(a.create for a in accesses), read, edit, delete, any(a.export for a in accesses),
                          hidden, read_only, any(a.transfer for a in accesses), oracles)
    return FULL if combined == FULL else combined


@dataclass(frozen=True)
class ObjectPermissions:
    """Access by role for one object. Roles not listed get nothing; `admin` gets everything.

    An object without a permissions block (`by_role` empty) is open to everyone, except for
    the fields derived from values hidden elsewhere: `open_roles` holds, per role (and
    OTHER_ROLES for the rest), full access minus those fields; empty when none are."""

    by_role: Mapping[str, RoleAccess] = field(default_factory=lambda: MappingProxyType({}))
    open_roles: Mapping[str, RoleAccess] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def restricted(self) -> bool:
        return bool(self.by_role)

    def for_roles(self, roles: frozenset[str]) -> RoleAccess:
        if ADMIN_ROLE in roles:
            return FULL
        if not self.by_role:
            if not self.open_roles:
                return FULL
            other = self.open_roles.get(OTHER_ROLES, FULL)
            return combine([self.open_roles.get(r, other) for r in roles] or [other])
        return combine([self.by_role[r] for r in roles if r in self.by_role])

    def readable_by(self, role: str) -> bool:
        """Whether one role may read any record of the object."""
        if not self.by_role:
            return True
        access = self.by_role.get(role)
        return access is not None and access.read != "none"


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
        by_role[role] = RoleAccess(bool(spec.get("create", False)), _scope(spec.get("read")), _scope(spec.get("edit")),
                                   _scope(spec.get("delete")), bool(spec.get("export", False)),
                                   frozenset(hidden), frozenset(read_only - hidden), bool(spec.get("transfer", False)))
    return ObjectPermissions(MappingProxyType(by_role))

