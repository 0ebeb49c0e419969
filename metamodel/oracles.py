"""Compiler warnings about checks that act as oracles for hidden values.

A validation rule (or a required_if / read_only_if condition, or a transition guard) that
reads a field hidden from a role still runs when that role saves a record: whether the
save passes tells the role something about the hidden value, and repeated saves can
recover it by binary search. The engine cannot close this without ignoring the rule, so
the compiler names every such check and the roles it reveals values to; authors decide
(rewrite the rule, or accept it). See docs/security.md, "Threat model and limits".
"""

from __future__ import annotations

from typing import Mapping

from metacrm.metamodel.concealment import Check, Concealed
from metacrm.metamodel.errors import Problem
from metacrm.metamodel.loader import Document
from metacrm.metamodel.model import ObjectDef
from metacrm.metamodel.permissions import OTHER_ROLES


def writes(obj: ObjectDef, role: str) -> bool:
    """Whether a role can save records of `obj` at all (and so see its checks pass or fail)."""
    permissions = obj.permissions
    if permissions is None or not permissions.restricted:
        return True
    access = permissions.by_role.get(role)
    return access is not None and (access.create or access.edit != "none")


def oracle_warnings(objects: Mapping[str, ObjectDef], documents: Mapping[str, Document],
                    results: Mapping[str, Concealed], checks: Mapping[str, list[Check]]) -> list[Problem]:
    warnings = []
    for name, obj in objects.items():
        for check in checks[name]:
            revealed: dict[str, set[str]] = {}
            for role, result in results.items():
                if writes(obj, role) and result.oracles([check]):
                    revealed[role] = {_name(name, cell) for cell in check.cells
                                      if result.reads_concealed(name, [cell])}
            if revealed:
                fields = sorted(set().union(*revealed.values()))
                roles = ", ".join("any role not named in permissions" if r == OTHER_ROLES else r for r in revealed)
                warnings.append(documents[name].problem(
                    f"warning: {check.kind} {check.name!r} reads {', '.join(fields)}, hidden from {roles}: "
                    "whether a save passes reveals something about the hidden value to them", check.where))
    return warnings


def _name(origin: str, cell: tuple[str, str]) -> str:
    return cell[1] if cell[0] == origin else f"{cell[0]}.{cell[1]}"
