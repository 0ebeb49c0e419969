"""Fetch the values of relation paths (`account.grade`) that expressions read.

One SELECT per related record, cached for the duration of a write or a batch, so a
bulk import of contacts of the same account reads that account once. A user who points a
lookup at a record they may not see gets that lookup's paths as if the record did not exist
(`scopes`), so no formula, default or validation rule answers with its values.
"""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.records.pipeline import relation_paths
from metamodel.model import Model, ObjectDef


def related_values(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef,
                   record: Mapping[str, Any], cache: dict, paths=None,
                   scopes: Mapping[str, sa.ColumnElement] | None = None) -> dict[str, Any]:
    """{"account.grade": value, ...} for every relation path of `obj`'s expressions (or `paths`).
    `scopes` limits, per lookup field of `obj`, which of its target records may be read."""
    paths = relation_paths(obj) if paths is None else paths
    values: dict[str, Any] = {}
    for path in paths:
        current_obj, current = obj, record
        for depth, part in enumerate(path[:-1]):
            target_id = current.get(part) if current is not None else None
            target_obj = model.object(current_obj.field(part).target)
            scope = scopes.get(part) if scopes and depth == 0 else None
            current = _fetch(conn, tables[target_obj.name], target_id, cache, scope) if target_id else None
            current_obj = target_obj
        values[".".join(path)] = current.get(path[-1]) if current is not None else None
    return values


def _fetch(conn: Connection, table: sa.Table, record_id: str, cache: dict,
           scope: sa.ColumnElement | None = None) -> dict[str, Any] | None:
    key = (table.name, record_id, scope is not None)
    if key not in cache:
        statement = sa.select(table).where(table.c.id == record_id)
        if scope is not None:
            statement = statement.where(scope)
        row = conn.execute(statement).first()
        cache[key] = dict(row._mapping) if row else None
    return cache[key]
