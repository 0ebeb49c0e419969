"""Fill formula and rollup fields for existing rows after a metadata change.

Rollups are one UPDATE each, ordered so that a rollup over another rollup runs after
it. Formulas are evaluated in Python (the same code as on write) over keyset batches,
so memory stays flat however large the table; rollups that aggregate or filter on a
recomputed formula run once more afterwards. Every recomputed row gets a new version,
so an ETag read before the change no longer matches.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.derived import rollup_inputs, stored_formulas
from metacrm.engine.records.pipeline import Pipeline
from metacrm.engine.records.relations import prefetch, related_values
from metacrm.engine.records.rollups import refresh_all
from metacrm.engine.storage.planner import Change
from metacrm.engine.storage.tables import build_tables
from metacrm.metamodel.model import FieldDef, Model

BATCH = 1000


def recompute(conn: Connection, model: Model, changes: list[Change]) -> None:
    tables = build_tables(model)[1]
    rollups = sorted(((c.object, c.new) for c in changes if c.new.type == "rollup"),
                     key=lambda item: _chain(model, item[1]))
    formula_objects = sorted({c.object for c in changes if c.new.type != "rollup"})
    for parent, f in rollups:
        refresh_all(conn, model, tables, parent, f)
    for name in formula_objects:
        _recompute_formulas(conn, model, tables, name)
    for parent_obj in model.objects.values():  # rollups over the formulas just recomputed
        for f in parent_obj.fields:
            if f.type == "rollup" and f.rollup.object in formula_objects and \
                    rollup_inputs(model.object(f.rollup.object), parent_obj, f.name) & \
                    set(model.object(f.rollup.object).formula_order):
                refresh_all(conn, model, tables, parent_obj.name, f)


def _chain(model: Model, f: FieldDef, depth: int = 0) -> int:
    """How many rollups lie below this one (a rollup of a rollup of ... ), so lower ones run first."""
    child = model.object(f.rollup.object)
    if depth > len(model.objects) or not f.rollup.field or child.field(f.rollup.field).type != "rollup":
        return depth
    return _chain(model, child.field(f.rollup.field), depth + 1)


def _recompute_formulas(conn: Connection, model: Model, tables, name: str) -> None:
    obj, table = model.object(name), tables[name]
    pipeline = Pipeline(obj, SYSTEM, Evaluator())
    names = list(stored_formulas(obj))
    update = sa.update(table).where(table.c.id == sa.bindparam("_id")).values(
        {"version": table.c.version + 1, **{n: sa.bindparam(f"_{n}") for n in names}})
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
        prefetch(conn, model, tables, obj, rows, cache)
        for row in rows:
            related = related_values(conn, model, tables, obj, row, cache)
            pipeline.compute_formulas(row, related, [], names)
            params.append({"_id": row["id"], **{f"_{n}": row[n] for n in names}})
        conn.execute(update, params)
        last = rows[-1]["id"]
