"""Compare the live model with a proposed one and list the changes, each with its risk.

safe: no stored value can be lost or refused. needs-data-check: existing rows are
checked before anything is applied (a type change, a new required or unique
constraint). destructive: data would be dropped (only with an explicit purge).
Fields are matched by stable id, so a changed name is a rename, not drop + add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metacrm.engine.storage.columns import type_signature
from metacrm.metamodel.model import FieldDef, IndexDef, Model, ObjectDef

SAFE, CHECK, DESTRUCTIVE = "safe", "needs-data-check", "destructive"


@dataclass(frozen=True)
class Change:
    action: str
    object: str
    safety: str
    description: str
    field: str | None = None
    old: FieldDef | None = None
    new: FieldDef | None = None
    index: IndexDef | None = None
    archived: Any = None

    def __str__(self) -> str:
        return f"[{self.safety}] {self.object}: {self.description}"


@dataclass(frozen=True)
class Plan:
    """What applying `new` over `old` would do; `base_revision` guards against races."""

    base_revision: int
    old: Model
    new: Model
    changes: tuple[Change, ...]
    purge: bool = False
    author: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def needs_data_check(self) -> bool:
        return any(c.safety == CHECK for c in self.changes)

    @property
    def destructive(self) -> bool:
        return any(c.safety == DESTRUCTIVE for c in self.changes)

    @property
    def warnings(self) -> list[str]:
        """What the compiler found legal but worth a look in the resulting metadata."""
        return [str(w) for w in self.new.warnings]

    def render(self) -> str:
        if not self.changes:
            lines = ["No changes: the database already matches this metadata."]
        else:
            lines = [f"Plan against revision {self.base_revision}: {len(self.changes)} change(s)"]
            lines += [f"  {c}" for c in self.changes]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  {w}" for w in self.warnings]
        return "\n".join(lines)

    def summary(self) -> list[str]:
        return [str(c) for c in self.changes]


def make_plan(old: Model, new: Model, *, archived: list[Any] = (), purge: bool = False,
              author: str | None = None) -> Plan:
    """The changes that turn `old` into `new` (objects missing from `new` are kept)."""
    changes: list[Change] = []
    for name, obj in new.objects.items():
        before = old.objects.get(name)
        if before is None:
            changes.append(Change("add_object", name, SAFE, f"create table with {len(obj.fields)} field(s)"))
            changes += [_recompute(name, f, "compute") for f in obj.fields if f.type in ("formula", "rollup")]
        else:
            changes += _object_changes(before, obj, [a for a in archived if a.object == name], purge)
    return Plan(old.revision, old, new, tuple(changes), purge, author)


def _object_changes(old: ObjectDef, new: ObjectDef, archived: list[Any], purge: bool) -> list[Change]:
    changes: list[Change] = []
    archived_by_id = {a.field_id: a for a in archived}
    for f in new.fields:
        before = old.field_by_id(f.id)
        if before is None:
            if f.id in archived_by_id:
                changes.append(Change("restore_field", new.name, SAFE,
                                      f"restore archived field {f.name!r} with its data", f.name, None, f,
                                      archived=archived_by_id[f.id]))
                changes += _field_changes(new.name, _field_from_archive(archived_by_id[f.id], f), f)
                continue
            safety = CHECK if f.required and f.default is None and not f.is_computed else SAFE
            note = " (required: existing rows need a value)" if safety == CHECK else ""
            changes.append(Change("add_field", new.name, safety, f"add field {f.name!r} ({f.type}){note}", f.name, None, f))
            if f.type in ("formula", "rollup"):
                changes.append(_recompute(new.name, f, "compute"))
            continue
        if before.name != f.name:
            changes.append(Change("rename_field", new.name, SAFE, f"rename field {before.name!r} to {f.name!r}",
                                  f.name, before, f))
        changes += _field_changes(new.name, before, f)
    for before in old.fields:
        if new.field_by_id(before.id) is None:
            if purge:
                changes.append(Change("purge_field", new.name, DESTRUCTIVE,
                                      f"drop field {before.name!r} and its data", before.name, before, None))
            else:
                changes.append(Change("remove_field", new.name, SAFE,
                                      f"remove field {before.name!r} (column archived, data kept, restorable)",
                                      before.name, before, None))
    changes += _index_changes(old, new)
    if not changes and dict(old.document) != dict(new.document):
        changes.append(Change("update_metadata", new.name, SAFE, "labels, layouts or rules changed (no schema change)"))
    return changes


def _field_from_archive(row: Any, current: FieldDef) -> FieldDef:
    """The field as it was when archived, for comparing with its restored definition."""
    from dataclasses import replace

    raw = row.definition
    return replace(current, name=current.name, type=raw["type"], required=False, unique=False,
                   indexed=False, precision=raw.get("precision", current.precision),
                   scale=raw.get("scale", current.scale), target=None)


def _field_changes(obj: str, old: FieldDef, new: FieldDef) -> list[Change]:
    changes: list[Change] = []
    name = new.name
    if old.type != new.type or type_signature(old) != type_signature(new) or old.target != new.target:
        if new.is_computed or old.is_computed:
            changes.append(Change("replace_computed", obj, SAFE,
                                  f"rebuild {name!r} ({old.type} -> {new.type}), values recomputed", name, old, new))
            if new.type in ("formula", "rollup"):
                changes.append(_recompute(obj, new, "recompute"))
            return changes
        changes.append(Change("change_type", obj, CHECK, f"change {name!r} from {_type(old)} to {_type(new)}",
                              name, old, new))
    elif new.type == "formula" and old.expression and new.expression and old.expression.source != new.expression.source:
        changes.append(_recompute(obj, new, "recompute"))
    elif new.type == "rollup" and old.rollup != new.rollup:
        changes.append(_recompute(obj, new, "recompute"))
    if new.required and not old.required and not new.is_computed:
        changes.append(Change("set_required", obj, CHECK, f"make {name!r} required", name, old, new))
    elif old.required and not new.required:
        changes.append(Change("drop_required", obj, SAFE, f"make {name!r} optional", name, old, new))
    if new.unique and not old.unique:
        changes.append(Change("add_unique", obj, CHECK, f"make {name!r} unique", name, old, new))
    elif old.unique and not new.unique:
        changes.append(Change("drop_unique", obj, SAFE, f"drop unique constraint on {name!r}", name, old, new))
    if new.indexed != old.indexed and not new.unique and not old.unique:
        action = "add_field_index" if new.indexed else "drop_field_index"
        changes.append(Change(action, obj, SAFE, f"{'add' if new.indexed else 'drop'} index on {name!r}", name, old, new))
    if new.max_length is not None and (old.max_length is None or new.max_length < old.max_length):
        changes.append(Change("tighten_length", obj, CHECK, f"limit {name!r} to {new.max_length} characters",
                              name, old, new))
    if old.on_delete != new.on_delete and new.target and old.target == new.target:
        changes.append(Change("change_on_delete", obj, SAFE,
                              f"on delete of {new.target}: {old.on_delete} -> {new.on_delete} for {name!r}", name, old, new))
    return changes


def _index_changes(old: ObjectDef, new: ObjectDef) -> list[Change]:
    before = {ix.name: ix for ix in old.indexes}
    after = {ix.name: ix for ix in new.indexes}
    renamed = {o.name: n.name for o in old.fields for n in new.fields if o.id == n.id}
    changes = []
    for name, ix in before.items():
        if name not in after or after[name] != ix:
            changes.append(Change("drop_index", new.name, SAFE, f"drop index {name} ({', '.join(ix.columns)})", index=ix))
    for name, ix in after.items():
        if name not in before or before[name] != ix:
            safety = CHECK if ix.unique else SAFE
            changes.append(Change("add_index", new.name, safety,
                                  f"add {'unique ' if ix.unique else ''}index {name} ({', '.join(_signed(ix))})", index=ix))
    del renamed
    return changes


def missing_index_changes(plan_changes: tuple[Change, ...], new: Model,
                          existing: dict[str, dict[str, tuple[str, ...]]]) -> list[Change]:
    """Indexes the model wants on a table that already exists but lacks them, e.g. after an
    engine upgrade added the default-order index or gave list-view indexes column directions;
    and list indexes the engine made earlier that no list uses any more. `existing` maps table
    name -> {index name: columns} as the database has them. Both changes are safe."""
    planned = {(c.object, c.index.name) for c in plan_changes if c.index is not None}
    changes = []
    for name, obj in new.objects.items():
        if obj.table_name not in existing:
            continue
        have = existing[obj.table_name]
        for ix in obj.indexes:
            if ix.name in have or (name, ix.name) in planned or ix.unique:
                continue
            changes.append(Change("add_index", name, SAFE,
                                  f"add missing index {ix.name} ({', '.join(_signed(ix))})", index=ix))
        wanted = {ix.name for ix in obj.indexes} | {f"ix_{obj.table_name}_{f.name}"[:63] for f in obj.fields}
        for index_name, columns in have.items():
            if _engine_list_index(obj.table_name, index_name) and index_name not in wanted \
                    and (name, index_name) not in planned:
                changes.append(Change("drop_index", name, SAFE, f"drop unused list index {index_name} "
                                      f"({', '.join(columns)})", index=IndexDef(index_name, columns)))
    return changes


def _engine_list_index(table: str, name: str) -> bool:
    """Whether `name` is one the engine gives list indexes (ix_<table>_<8 hex digits>)."""
    prefix = f"ix_{table[:40]}_"
    digest = name[len(prefix):]
    return name.startswith(prefix) and len(digest) == 8 and all(ch in "0123456789abcdef" for ch in digest)


def _signed(ix: IndexDef) -> list[str]:
    return [f"{c} desc" if c in ix.descending else c for c in ix.columns]


def _recompute(obj: str, f: FieldDef, verb: str) -> Change:
    return Change("recompute", obj, SAFE, f"{verb} {f.type} {f.name!r} for existing rows", f.name, None, f)


def _type(f: FieldDef) -> str:
    if f.storage_type in ("decimal", "currency", "percent"):
        return f"{f.type}({f.precision},{f.scale})"
    return f.type
