"""Fetch the values of relation paths (`account.grade`) that expressions read.

One SELECT per related record, cached for the duration of a write or a batch, so a
bulk import of contacts of the same account reads that account once. For a batch of
records known in advance, `prefetch` fills the cache with one SELECT per lookup hop. A user
who points a lookup at a record they may not see gets that lookup's paths as if the record
did not exist (`scopes`), so no formula, default or validation rule answers with its values.

It also fills in the formulas computed when read (see metamodel.readtime) on records the engine
reads (`fill_read_time`): every path that hands a stored record to a person or to an expression
— get, list, the records loaded before an update or delete, relation paths such as
`account.days_open`, automation on timers and schedules — calls it, so these values are those
of the reading moment and the reading user, never a stale copy from the last write. The two
are one module because they recurse into each other: a read-time formula reads relation paths,
and a relation path may end at a read-time formula.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.pipeline import Pipeline, relation_paths
from metacrm.metamodel.model import Model, ObjectDef


def related_values(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef,
                   record: Mapping[str, Any], cache: dict, paths=None, evaluator: Evaluator | None = None,
                   depth: int = 0, scopes: Mapping[str, sa.ColumnElement] | None = None) -> dict[str, Any]:
    """{"account.grade": value, ...} for every relation path of `obj`'s expressions (or `paths`).
    A path that ends at a formula computed when read gets it computed now, with `evaluator`.
    `scopes` limits, per lookup field of `obj`, which of its target records may be read."""
    paths = relation_paths(obj) if paths is None else paths
    values: dict[str, Any] = {}
    for path in paths:
        current_obj, current = obj, record
        for hop, part in enumerate(path[:-1]):
            target_id = current.get(part) if current is not None else None
            target_obj = model.object(current_obj.field(part).target)
            scope = scopes.get(part) if scopes and hop == 0 else None
            current = _fetch(conn, tables[target_obj.name], target_id, cache, scope) if target_id else None
            current_obj = target_obj
        if current is not None and path[-1] in current_obj.read_time_formulas:
            _fill_once(conn, model, tables, current_obj, current, cache, evaluator, depth)
        values[".".join(path)] = current.get(path[-1]) if current is not None else None
    return values


def prefetch(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef,
             rows: list[Mapping[str, Any]], cache: dict, paths=None, evaluator: Evaluator | None = None,
             depth: int = 0) -> None:
    """Load the records that `rows` reach through `paths` into `cache`, hop by hop, one SELECT per
    lookup per 1000 ids, and compute the read-time formulas those paths end at, for the batch."""
    paths = relation_paths(obj) if paths is None else paths
    reached: dict[tuple[str, ...], tuple[ObjectDef, list]] = {(): (obj, list(rows))}
    for length in range(1, max((len(p) for p in paths), default=1)):
        for prefix in sorted({p[:length] for p in paths if len(p) > length}):
            source, records = reached[prefix[:-1]]
            target = model.object(source.field(prefix[-1]).target)
            ids = sorted({r[prefix[-1]] for r in records if r is not None and r.get(prefix[-1])})
            _fetch_many(conn, tables[target.name], ids, cache)
            reached[prefix] = (target, [cache[(target.name, i)] for i in ids if cache[(target.name, i)] is not None])
    for path in paths:
        target, records = reached.get(path[:-1], (None, []))
        if target is not None and path[-1] in target.read_time_formulas:
            fresh = [r for r in records if ("read_time", target.name, r["id"]) not in cache]
            cache.update({("read_time", target.name, r["id"]): True for r in fresh})
            fill_read_time(conn, model, tables, target, fresh, evaluator, cache, depth + 1)


def _fetch_many(conn: Connection, table: sa.Table, ids: list[str], cache: dict, batch: int = 1000,
                scope: sa.ColumnElement | None = None) -> None:
    """`_fetch` for many ids: one SELECT per `batch` ids, cached under the keys `_fetch` reads."""
    def key(i):
        return (table.name, i) if scope is None else (table.name, i, "scoped")

    wanted = [i for i in ids if key(i) not in cache]
    for start in range(0, len(wanted), batch):
        chunk = wanted[start:start + batch]
        statement = sa.select(table).where(table.c.id.in_(chunk))
        if scope is not None:
            statement = statement.where(scope)
        found = {row.id: dict(row._mapping) for row in conn.execute(statement)}
        cache.update({key(i): found.get(i) for i in chunk})


def prefetch_scoped(conn: Connection, tables: Mapping[str, sa.Table], model: Model, obj: ObjectDef,
                    rows: list[Mapping[str, Any]], cache: dict, scopes: Mapping[str, sa.ColumnElement]) -> None:
    """The records that lookups of `rows` point at, as far as the user may read them (`scopes`, per
    lookup field): one SELECT per lookup per 1000 ids, into the cache `related_values` reads."""
    for name, scope in scopes.items():
        ids = sorted({r[name] for r in rows if r.get(name)})
        _fetch_many(conn, tables[model.object(obj.field(name).target).name], ids, cache, scope=scope)


def _fill_once(conn, model: Model, tables, obj: ObjectDef, row: dict[str, Any], cache: dict,
               evaluator: Evaluator | None, depth: int) -> None:
    key = ("read_time", obj.name, row["id"])
    if key not in cache:
        cache[key] = True
        fill_read_time(conn, model, tables, obj, [row], evaluator, cache, depth + 1)


def _fetch(conn: Connection, table: sa.Table, record_id: str, cache: dict,
           scope: sa.ColumnElement | None = None) -> dict[str, Any] | None:
    """One related record; with `scope`, only if the acting user may read it (cached apart)."""
    key = (table.name, record_id) if scope is None else (table.name, record_id, "scoped")
    if key not in cache:
        statement = sa.select(table).where(table.c.id == record_id)
        if scope is not None:
            statement = statement.where(scope)
        row = conn.execute(statement).first()
        cache[key] = dict(row._mapping) if row else None
    return cache[key]


#: How many relation hops of read-time formulas reading read-time formulas are followed
#: (only a cycle in the data, such as two accounts each other's parent, gets this far).
MAX_READ_TIME_DEPTH = 8


def fill_read_time(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef, rows: list[dict[str, Any]],
         evaluator: Evaluator | None = None, cache: dict | None = None, depth: int = 0) -> None:
    """Compute `obj`'s read-time formulas in place on `rows` (in dependency order)."""
    names = obj.read_time_formulas
    if not names or not rows:
        return
    evaluator = evaluator or Evaluator()
    cache = {} if cache is None else cache
    pipeline = Pipeline(obj, SYSTEM, evaluator)
    paths = _paths(obj)
    if paths and depth <= MAX_READ_TIME_DEPTH:
        prefetch(conn, model, tables, obj, rows, cache, paths, evaluator, depth)
    for row in rows:
        if depth > MAX_READ_TIME_DEPTH:
            row.update(dict.fromkeys(names))
            continue
        related = related_values(conn, model, tables, obj, row, cache, paths=paths, evaluator=evaluator,
                                 depth=depth) if paths else {}
        pipeline.compute_formulas(row, related, [], names)


@lru_cache(maxsize=256)
def _paths(obj: ObjectDef) -> tuple[tuple[str, ...], ...]:
    """The relation paths that the read-time formulas of `obj` read."""
    found: set[tuple[str, ...]] = set()
    for name in obj.read_time_formulas:
        found |= obj.field(name).expression.relation_paths
    return tuple(sorted(found))
