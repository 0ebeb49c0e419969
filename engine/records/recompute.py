"""Fill formula and rollup fields for existing rows after a metadata change.

Rollups are one UPDATE each. Formulas are evaluated in Python (the same code as on
write) over keyset batches, so memory stays flat however large the table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.expressions import Evaluator
from engine.records.context import SYSTEM
from engine.records.pipeline import Pipeline
from engine.records.relations import related_values
from engine.records.rollups import refresh_all
from engine.storage.planner import Change
from engine.storage.tables import build_tables
from metamodel.model import Model

BATCH = 1000


def recompute(conn: Connection, model: Model, changes: list[Change]) -> None:
    tables = build_tables(model)[1]
    formula_objects = set()
    for change in changes:
        if change.new.type == "rollup":
            refresh_all(conn, model, tables, change.object, change.new)
        else:
            formula_objects.add(change.object)
    for name in sorted(formula_objects):
        _recompute_formulas(conn, model, tables, name)


def _recompute_formulas(conn: Connection, model: Model, tables, name: str) -> None:
    obj, table = model.object(name), tables[name]
    pipeline = Pipeline(obj, SYSTEM, Evaluator())
    names = list(obj.formula_order)
    update = sa.update(table).where(table.c.id == sa.bindparam("_id")).values(
        {n: sa.bindparam(f"_{n}") for n in names})
    last: Any = None
    while True:
        query = sa.select(table).order_by(table.c.id).limit(BATCH)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            return
        params = []
        cache: dict = {}
        for row in rows:
            related = related_values(conn, model, tables, obj, row, cache)
            pipeline.compute_formulas(row, related, [])
            params.append({"_id": row["id"], **{f"_{n}": row[n] for n in names}})
        conn.execute(update, params)
        last = rows[-1]["id"]
