"""Keep values derived from other records current after a write, set-based.

A write changes values stored on *other* records: rollups on its parents, and formulas
of records that read it through a relation path (`account.grade`). The engine changes
those records itself, as a change of theirs made by the system:

- parents: per batch of affected parents, one SELECT (locking them on PostgreSQL, in id
  order), one executemany adding the change to count/sum rollups without a filter, one
  UPDATE recomputing the other rollups fed by the written object in SQL, one SELECT of the
  new rollup values;
- readers: keyset batches of the records whose relation path leads to a changed record
  (a nested IN subquery per path);
- every record whose rollups or formulas changed: its stored formulas recomputed in
  dependency order, `version` + 1 and `updated_at` (one executemany per batch), then the
  same for whatever depends on it in turn (grandparents, readers of readers), then its
  automation as an "updated" event by the system. No field history is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from metacrm.engine.errors import FieldError, ValidationFailed
from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records import integrity
from metacrm.engine.records.pipeline import Pipeline
from metacrm.engine.records.query import kind_of
from metacrm.engine.records.relations import fill_read_time, prefetch, related_values
from metacrm.engine.records.rollups import add_deltas, deltas, refresh_rollups
from metacrm.engine.storage import dialect
from metacrm.metamodel import filters as flt
from metacrm.metamodel.model import FieldDef, Model, ObjectDef

BATCH = 1000
#: Rounds of "a derived value changed, so values derived from it change" before giving up:
#: only rollups and formulas that feed each other in a loop (through the data) get this far.
MAX_ROUNDS = 16

Pair = tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]


@dataclass
class Propagation:
    """One write's follow-up changes. `touched` collects (object, id) of every record changed."""

    service: Any  # RecordService
    conn: Connection
    model: Model
    actor: Actor
    now: datetime
    touched: set[tuple[str, str]] = field(default_factory=set)
    vanishing: set[tuple[str, str]] = field(default_factory=set)  # about to be deleted: left alone

    def __post_init__(self) -> None:
        self.tables = self.service.runtime.tables(self.model)
        self.system = replace(self.actor, system=True, channel="system")
        self.evaluator = Evaluator(self.actor.clock, self.actor.user_id)

    def written(self, obj: ObjectDef, pairs: list[Pair], rounds: int = 0) -> None:
        """Bring up to date what depends on these (before, after) records of `obj`."""
        if not pairs:
            return
        if rounds >= MAX_ROUNDS:
            raise ValidationFailed([FieldError(None, "derived_loop", (
                f"rollups and formulas that read {obj.name} keep changing each other; stopped after "
                f"{MAX_ROUNDS} rounds (do two records roll up into each other?)"))])
        for parent, fields, ids in _parents_to_refresh(self.model, obj, pairs):
            ids = [i for i in ids if (parent.name, i) not in self.vanishing]
            changes = {f.name: d for f in fields if (d := deltas(obj, f, pairs)) is not None}
            for start in range(0, len(ids), BATCH):
                self._settle(parent, self._refresh_parents(parent, fields, ids[start:start + BATCH], changes), rounds)
        for reader, prefix, changed in _readers_to_recompute(self.model, obj, pairs):
            for start in range(0, len(changed), BATCH):
                self._recompute_readers(reader, prefix, changed[start:start + BATCH], rounds)

    def deleting(self, obj: ObjectDef, ids: list[str], rounds: int = 0) -> list[tuple[ObjectDef, list[Pair]]]:
        """Before `ids` of `obj` are deleted. Children whose lookup is `set_null` lose it now, as a
        system change (version, formulas, rollups, automation) rather than silently in the database;
        children that cascade are returned as (object, deleted pairs) for `written` after the delete."""
        if rounds >= MAX_ROUNDS:
            raise ValidationFailed([FieldError(None, "derived_loop", f"deleting {obj.name} cascades too deep")])
        gone: list[tuple[ObjectDef, list[Pair]]] = []
        self.vanishing |= {(obj.name, i) for i in ids}
        for child, f in self.model.children_of(obj.name):
            table = self.tables[child.name]
            for start in range(0, len(ids), BATCH):
                chunk = ids[start:start + BATCH]
                if f.on_delete == "set_null":
                    self._detach(child, f, table.c[f.name].in_(chunk))
                elif f.on_delete == "cascade" and (self.model.rollups_fed_by(child.name)
                                                   or self.model.children_of(child.name)):
                    rows = self._lock(table, table.c[f.name].in_(chunk))  # else the database's cascade is all
                    if rows:
                        gone.append((child, [(row, None) for row in rows]))
                        gone += self.deleting(child, [row["id"] for row in rows], rounds + 1)
        return gone

    def _detach(self, child: ObjectDef, f: FieldDef, condition) -> None:
        table = self.tables[child.name]
        while True:  # each batch stops matching once its lookup is cleared
            rows = self._lock(table, condition, BATCH)
            if not rows:
                return
            self.conn.execute(sa.update(table).where(table.c.id.in_([r["id"] for r in rows])).values({f.name: None}))
            self._settle(child, self._recompute(child, [(row, {**row, f.name: None}) for row in rows], [f.name]), 0)

    # -- parents -------------------------------------------------------------------------
    def _refresh_parents(self, parent: ObjectDef, fields: list[FieldDef], ids: list[str],
                         changes: dict[str, dict[str, Any]]) -> list[Pair]:
        """Lock the parents (id order), move count/sum rollups by `changes` ({field: {id: delta}}),
        recompute the other rollups, and return the (before, after) of those whose values changed."""
        table = self.tables[parent.name]
        befores = self._lock(table, table.c.id.in_(ids))
        chunk = set(ids)
        add_deltas(self.conn, table, [f for f in fields if f.name in changes],
                   {n: {i: d for i, d in c.items() if i in chunk} for n, c in changes.items()})
        refresh_rollups(self.conn, self.model, self.tables, parent.name, [f for f in fields if f.name not in changes],
                        ids, self.actor.clock)
        names = [f.name for f in fields]
        fresh = {row.id: row._mapping for row in self.conn.execute(
            sa.select(table.c.id, *(table.c[n] for n in names)).where(table.c.id.in_(ids)))}
        candidates = [(before, {**before, **{n: fresh[before["id"]][n] for n in names}}) for before in befores]
        return self._recompute(parent, candidates, names)

    # -- readers -------------------------------------------------------------------------
    def _recompute_readers(self, reader: ObjectDef, prefix: tuple[str, ...], ids: list[str], rounds: int) -> None:
        table = self.tables[reader.name]
        condition = _leads_to(self.model, self.tables, reader, prefix, ids)
        last = None
        while True:
            rows = self._lock(table, condition if last is None else sa.and_(condition, table.c.id > last), BATCH)
            if not rows:
                return
            self._settle(reader, self._recompute(reader, [(row, dict(row)) for row in rows], []), rounds)
            last = rows[-1]["id"]

    # -- shared steps ----------------------------------------------------------------------
    def _lock(self, table: sa.Table, condition, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows in id order (a stable lock order), locked on PostgreSQL. FOR NO KEY UPDATE, the lock an
        UPDATE of non-key columns takes: it does not wait for the KEY SHARE locks that concurrent
        inserts of children take on their parent (FOR UPDATE would, and two such writers deadlock)."""
        statement = sa.select(table).where(condition).order_by(table.c.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [dict(row._mapping) for row in self.conn.execute(dialect.locked(self.conn, statement, key_share=True))]

    def _recompute(self, obj: ObjectDef, candidates: list[tuple[dict, dict]], changed_names: list[str]) -> list[Pair]:
        """Stored formulas of each candidate recomputed; the pairs in which anything changed."""
        names = stored_formulas(obj)
        watched = list(changed_names) + list(names)
        if names:
            pipeline = Pipeline(obj, self.system, self.evaluator)
            cache: dict = {}
            prefetch(self.conn, self.model, self.tables, obj, [a for _, a in candidates], cache,
                     evaluator=self.evaluator)
            for _, after in candidates:
                related = related_values(self.conn, self.model, self.tables, obj, after, cache,
                                         evaluator=self.evaluator)
                pipeline.compute_formulas(after, related, [], names)  # an error leaves the formula blank
        return [(before, after) for before, after in candidates if any(before[n] != after[n] for n in watched)]

    def _settle(self, obj: ObjectDef, pairs: list[Pair], rounds: int) -> None:
        """Write the recomputed formulas with version + 1, then follow what depends on them."""
        if not pairs:
            return
        table = self.tables[obj.name]
        names = stored_formulas(obj)
        for before, after in pairs:
            after.update(version=before["version"] + 1, updated_at=self.now)
        statement = sa.update(table).where(table.c.id == sa.bindparam("_id")).values(
            {"version": sa.bindparam("_version"), "updated_at": sa.bindparam("_updated_at"),
             **{n: sa.bindparam(f"_{n}") for n in names}})
        try:
            self.conn.execute(statement, [{"_id": a["id"], "_version": a["version"], "_updated_at": self.now,
                                           **{f"_{n}": a[n] for n in names}} for _, a in pairs])
        except IntegrityError as exc:  # a unique formula now collides with another record's value
            broken = integrity.broken_constraint(exc, table)
            value = next((a.get(broken[1]) for _, a in pairs), None) if broken else None
            raise ValidationFailed([integrity.field_error(Pipeline(obj, self.actor, self.evaluator), broken, value)]) \
                from None
        self.touched |= {(obj.name, a["id"]) for _, a in pairs}
        self.written(obj, pairs, rounds + 1)
        self._run_automation(obj, pairs)

    def _run_automation(self, obj: ObjectDef, pairs: list[Pair]) -> None:
        """Announce the change as an update by the system (`metacrm_after_write`, system=True)."""
        if obj.read_time_formulas:  # conditions see them as of now, on both sides
            for side in (0, 1):
                fill_read_time(self.conn, self.model, self.tables, obj, [p[side] for p in pairs], self.evaluator)
        self.service.hooks.metacrm_after_write(service=self.service, conn=self.conn, model=self.model, obj=obj,
                                               kind="updated", pairs=pairs, actor=self.system, logs=None, system=True)


# -- what depends on what (computed once per model) --------------------------------------------


@lru_cache(maxsize=256)
def stored_formulas(obj: ObjectDef) -> tuple[str, ...]:
    """Formulas whose value is stored (all but those computed when read), in dependency order."""
    return tuple(n for n in obj.formula_order if n not in obj.read_time_formulas)


@lru_cache(maxsize=512)
def rollup_inputs(child: ObjectDef, parent: ObjectDef, name: str) -> frozenset[str]:
    """The child fields a rollup reads: its lookup, the aggregated field, the filter's fields."""
    spec = parent.field(name).rollup
    parsed = flt.parse_filter(spec.filter or None, kind_of(child))
    return frozenset({spec.via, spec.field} | {c.field for c in flt.fields_in(parsed)}) - {None}


def _parents_to_refresh(model: Model, obj: ObjectDef, pairs: Iterable[Pair]):
    """(parent object, its rollups fed by `obj`, sorted parent ids) whose rollups may have changed."""
    by_parent: dict[str, tuple[ObjectDef, list[FieldDef], set[str]]] = {}
    for parent, f in model.rollups_fed_by(obj.name):
        inputs = rollup_inputs(obj, parent, f.name)
        ids: set[str] = set()
        for before, after in pairs:
            if before is None or after is None or any(before.get(k) != after.get(k) for k in inputs):
                ids |= {r[f.rollup.via] for r in (before, after) if r is not None and r.get(f.rollup.via) is not None}
        if ids:
            entry = by_parent.setdefault(parent.name, (parent, [], set()))
            entry[1].append(f)
            entry[2].update(ids)
    return [(parent, fields, sorted(ids)) for parent, fields, ids in by_parent.values()]


@lru_cache(maxsize=256)
def feeds_others(model: Model, name: str) -> bool:
    """Whether writes of `name` records can change other records (a rollup over them, a stored
    formula reading them): most objects feed nothing, and their writes skip propagation."""
    return bool(model.rollups_fed_by(name)) or bool(_dependents(model, name))


@lru_cache(maxsize=256)
def _dependents(model: Model, name: str) -> tuple[tuple[ObjectDef, tuple[str, ...], str], ...]:
    """(reader object, path prefix leading to a `name` record, field of `name` read) for every
    stored formula that reads a `name` record through a relation path."""
    found = set()
    for reader in model.objects.values():
        for formula in stored_formulas(reader):
            for path in reader.field(formula).expression.relation_paths:
                current = reader
                for k, part in enumerate(path[:-1]):
                    current = model.object(current.field(part).target)
                    if current.name == name:
                        found.add((reader.name, path[:k + 1], path[k + 1]))
    return tuple((model.object(r), prefix, watched) for r, prefix, watched in sorted(found))


def _readers_to_recompute(model: Model, obj: ObjectDef, pairs: Iterable[Pair]):
    """(reader object, path prefix, sorted ids of `obj` records whose read field changed)."""
    updates = [(b, a) for b, a in pairs if b is not None and a is not None]
    if not updates:
        return []  # nothing can refer to a new record yet; deletes are the foreign keys' business
    found = []
    for reader, prefix, watched in _dependents(model, obj.name):
        ids = sorted({a["id"] for b, a in updates if b.get(watched) != a.get(watched)})
        if ids:
            found.append((reader, prefix, ids))
    return found


def _leads_to(model: Model, tables: Mapping[str, sa.Table], reader: ObjectDef, prefix: tuple[str, ...],
              ids: list[str]) -> sa.ColumnElement:
    """Rows of `reader` whose relation path `prefix` ends at one of `ids` (nested IN subqueries)."""
    chain = [reader]
    for part in prefix[:-1]:
        chain.append(model.object(chain[-1].field(part).target))
    condition = tables[chain[-1].name].c[prefix[-1]].in_(ids)
    for position in range(len(prefix) - 2, -1, -1):
        inner = tables[chain[position + 1].name]
        condition = tables[chain[position].name].c[prefix[position]].in_(sa.select(inner.c.id).where(condition))
    return condition
