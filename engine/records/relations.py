"""Fetch the values of relation paths (`account.grade`) that expressions read.

One SELECT per related record, cached for the duration of a write or a batch, so a
bulk import of contacts of the same account reads that account once.
"""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.expressions import Evaluator
from engine.records.pipeline import relation_paths
from metamodel.model import Model, ObjectDef


def related_values(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef,
                   record: Mapping[str, Any], cache: dict, paths=None, evaluator: Evaluator | None = None,
                   depth: int = 0) -> dict[str, Any]:
    """{"account.grade": value, ...} for every relation path of `obj`'s expressions (or `paths`).
    A path that ends at a formula computed when read gets it computed now, with `evaluator`."""
    paths = relation_paths(obj) if paths is None else paths
    values: dict[str, Any] = {}
    for path in paths:
        current_obj, current = obj, record
        for part in path[:-1]:
            target_id = current.get(part) if current is not None else None
            target_obj = model.object(current_obj.field(part).target)
            current = _fetch(conn, tables[target_obj.name], target_id, cache) if target_id else None
            current_obj = target_obj
        if current is not None and path[-1] in current_obj.read_time_formulas:
            _fill_once(conn, model, tables, current_obj, current, cache, evaluator, depth)
        values[".".join(path)] = current.get(path[-1]) if current is not None else None
    return values


def _fill_once(conn, model: Model, tables, obj: ObjectDef, row: dict[str, Any], cache: dict,
               evaluator: Evaluator | None, depth: int) -> None:
    from engine.records.readtime import fill

    key = ("read_time", obj.name, row["id"])
    if key not in cache:
        cache[key] = True
        fill(conn, model, tables, obj, [row], evaluator, cache, depth + 1)


def _fetch(conn: Connection, table: sa.Table, record_id: str, cache: dict) -> dict[str, Any] | None:
    key = (table.name, record_id)
    if key not in cache:
        row = conn.execute(sa.select(table).where(table.c.id == record_id)).first()
        cache[key] = dict(row._mapping) if row else None
    return cache[key]
