"""Everything computed from a hidden value is hidden from the same roles.

A field is *concealed* from a role when the role's permissions hide it, or when its object
has permissions that do not let the role read it at all. A computed value that reads a
concealed field is hidden from that role too: a formula or default expression reading it
on its own object or through a relation path (`account.secret`: the lookup `account` or
the field `secret` on the account), a rollup over it on the child records (the rollup's
field, its `via` lookup or a field its filter reads), and so on, to a fixed point over the
whole model. It runs once per metadata revision; access checks per request only look the
finished sets up (metamodel.permissions).

Validation rules that read a concealed field are recorded per role as *oracles*: their
pass/fail answers reveal something about the hidden value (see docs/security.md), so the
compiler warns about them and the engine never adds evaluation details to their errors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from metacrm.metamodel import filters as flt
from metacrm.metamodel.model import FieldDef, ObjectDef
from metacrm.metamodel.permissions import FULL, OTHER_ROLES, ObjectPermissions

Cell = tuple[str, str]  # (object name, field name): one value a computation reads


def path_cells(objects: Mapping[str, ObjectDef], obj: ObjectDef, path: tuple[str, ...]) -> tuple[Cell, ...]:
    """The fields a relation path reads, hop by hop: ("account", "grade") from contact reads
    contact.account and account.grade. `previous.x` (automation and guards) reads x."""
    if len(path) > 1 and path[0] == "previous" and not obj.has_field("previous"):
        path = path[1:]
    cells, current = [], obj
    for part in path:
        cells.append((current.name, part))
        target = current.field(part).target if current.has_field(part) else None
        if target is None or target not in objects:
            break
        current = objects[target]
    return tuple(cells)


def expression_cells(objects: Mapping[str, ObjectDef], obj: ObjectDef, expression: Any) -> frozenset[Cell]:
    if expression is None:
        return frozenset()
    return frozenset(c for path in expression.paths for c in path_cells(objects, obj, path))


def filter_cells(objects: Mapping[str, ObjectDef], obj: ObjectDef, raw_filter: Any) -> frozenset[Cell]:
    """The fields a (compiled, so valid) filter of `obj` reads."""
    kind = lambda name: obj.field(name).kind if obj.has_field(name) else flt.system_kind(name)  # noqa: E731
    try:
        parsed = flt.parse_filter(thaw(raw_filter) or None, kind)
    except flt.FilterError:
        return frozenset()
    return frozenset((obj.name, c.field) for c in flt.fields_in(parsed))


def field_cells(objects: Mapping[str, ObjectDef], obj: ObjectDef, f: FieldDef) -> frozenset[Cell]:
    """What a field's value is computed from (empty for a plain stored field)."""
    cells = expression_cells(objects, obj, f.expression) | expression_cells(objects, obj, f.default_expression)
    spec = f.rollup
    if spec is not None and spec.object in objects:
        child = objects[spec.object]
        cells |= {(child.name, spec.via)} | ({(child.name, spec.field)} if spec.field else set())
        cells |= filter_cells(objects, child, spec.filter)
    return cells


@dataclass(frozen=True)
class Check:
    """A write-time check whose pass/fail a writer sees: a validation rule, a required_if or
    read_only_if condition, or a transition guard (allowed to `roles`; empty: to everyone)."""

    object: str
    kind: str
    name: str
    where: tuple
    cells: frozenset[Cell]
    roles: tuple[str, ...] = ()


def checks_of(objects: Mapping[str, ObjectDef], obj: ObjectDef) -> list[Check]:
    found = []
    for index, rule in enumerate(obj.validation_rules):
        if rule.active:
            cells = expression_cells(objects, obj, rule.error_when) | (
                {(obj.name, rule.field)} if rule.field else set())
            found.append(Check(obj.name, "validation rule", rule.name, ("validation_rules", index), cells))
    positions = {raw.get("name"): i for i, raw in enumerate(obj.document.get("fields", ()))}
    for f in obj.fields:
        for key in ("required_if", "read_only_if"):
            expression = getattr(f, key)
            if expression is not None:
                found.append(Check(obj.name, f"{key} condition", f.name, ("fields", positions.get(f.name, 0), key),
                                   expression_cells(objects, obj, expression)))
    for m, machine in enumerate(obj.state_machines):
        for t, transition in enumerate(machine.transitions):
            if transition.guard is not None:
                found.append(Check(obj.name, "transition guard", f"{machine.field} -> {transition.target}",
                                   ("state_machines", m, "transitions", t, "guard"),
                                   expression_cells(objects, obj, transition.guard), tuple(transition.roles)))
    return found


def roles_of(objects: Mapping[str, ObjectDef]) -> list[str]:
    """Every role some permissions block names, and OTHER_ROLES for the rest."""
    names = {r for obj in objects.values() if obj.permissions is not None for r in obj.permissions.by_role}
    return sorted(names) + [OTHER_ROLES]


class Concealed:
    """For one role: the fields hidden on every object, declared and derived (a fixed point)."""

    def __init__(self, objects: Mapping[str, ObjectDef], role: str, reads: Mapping[Cell, frozenset[Cell]]):
        self.objects, self.role = objects, role
        self.hidden: dict[str, set[str]] = {name: set(_declared(obj, role)) for name, obj in objects.items()}
        changed = True
        while changed:
            changed = False
            for (name, field_name), cells in reads.items():
                if field_name not in self.hidden[name] and self.reads_concealed(name, cells):
                    self.hidden[name].add(field_name)
                    changed = True

    def reads_concealed(self, origin: str, cells: Iterable[Cell]) -> bool:
        """Whether values computed on `origin` from `cells` reveal something hidden from the role.
        Another object the role cannot read conceals all its fields; `origin` itself only its
        hidden ones (a role that may create but not read still writes its plain fields)."""
        return any(field_name in self.hidden.get(name, ()) or (name != origin and not self._readable(name))
                   for name, field_name in cells)

    def _readable(self, name: str) -> bool:
        permissions = self.objects[name].permissions
        return permissions is None or permissions.readable_by(self.role)

    def oracles(self, checks: list[Check]) -> list[Check]:
        """The checks this role can trigger whose outcome depends on a value concealed from it."""
        return [c for c in checks if (not c.roles or self.role in c.roles) and self.reads_concealed(c.object, c.cells)]


def _declared(obj: ObjectDef, role: str) -> frozenset[str]:
    permissions = obj.permissions
    access = permissions.by_role.get(role) if permissions is not None else None
    return access.hidden if access is not None else frozenset()


def conceal(objects: Mapping[str, ObjectDef]
            ) -> tuple[dict[str, ObjectDef], dict[str, Concealed], dict[str, list[Check]]]:
    """The objects with their permissions completed (derived hidden fields and oracles per role),
    the per-role results, and every object's write-time checks (for the compiler's warnings)."""
    reads = {(obj.name, f.name): cells for obj in objects.values() for f in obj.fields
             if (cells := field_cells(objects, obj, f))}
    results = {role: Concealed(objects, role, reads) for role in roles_of(objects)}
    checks = {name: checks_of(objects, obj) for name, obj in objects.items()}
    finished = {}
    for name, obj in objects.items():
        rule_oracles = {role: frozenset(c.name for c in result.oracles(checks[name]) if c.kind == "validation rule")
                        for role, result in results.items()}
        hidden = {role: frozenset(result.hidden[name]) for role, result in results.items()}
        finished[name] = replace(obj, permissions=_completed(obj.permissions, hidden, rule_oracles))
    return finished, results, checks


def _completed(permissions: ObjectPermissions | None, hidden: Mapping[str, frozenset[str]],
               oracles: Mapping[str, frozenset[str]]) -> ObjectPermissions:
    permissions = permissions or ObjectPermissions()
    if permissions.restricted:
        by_role = {role: replace(access, hidden=hidden[role], read_only=access.read_only - hidden[role],
                                 oracles=oracles[role])
                   for role, access in permissions.by_role.items()}
        return ObjectPermissions(MappingProxyType(by_role))
    if not any(hidden.values()) and not any(oracles.values()):
        return permissions
    open_roles = {role: replace(FULL, hidden=hidden[role], oracles=oracles[role]) for role in hidden}
    return ObjectPermissions(open_roles=MappingProxyType(open_roles))


def thaw(value: Any) -> Any:
    """Frozen metadata (mapping proxies, tuples) back to dicts and lists, as filters are parsed."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value
