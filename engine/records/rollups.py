"""Rollup fields: a parent's count/sum/min/max/avg over its children, kept in SQL.

After children change, count and sum rollups without a filter move by the difference the
written children make (`UPDATE parent SET r = r + delta`, one executemany per batch: no
child rows are read again, and concurrent writers of children of one parent add up rather
than overwrite). The others (min, max, avg, filtered) get one UPDATE per batch with a
correlated subquery per rollup. Which parents, and what
happens to them afterwards (version, formulas, automation), is engine.records.derived.
Decimal rollups are exact on both databases (engine.storage.scaled): sum, min and max as
stored, avg rounded half away from zero to the rollup's scale, and a value too large for
the rollup's precision is refused, as PostgreSQL refuses it.
"""

from __future__ import annotations

from decimal import Context, Decimal, localcontext
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.expressions.evaluator import Clock
from metacrm.engine.records.query import where_clause
from metacrm.engine.storage import dialect, scaled
from metacrm.engine.storage.columns import ExactDecimal, column_type
from metacrm.metamodel.model import FieldDef, Model, ObjectDef

BATCH = 1000


def rollup_value(model: Model, tables: Mapping[str, sa.Table], parent: sa.Table, field: FieldDef,
                 clock: Clock | None = None) -> sa.ScalarSelect:
    """The correlated subquery computing `field` for each row of `parent`."""
    spec = field.rollup
    child_obj, child = model.object(spec.object), tables[spec.object]
    child = child.alias("child") if child is parent else child  # a rollup over records of its own object
    condition = where_clause(child_obj, child, spec.filter or None, clock or Clock())
    where = [child.c[spec.via] == parent.c.id] + ([condition] if condition is not None else [])
    target = column_type(field)
    if spec.function != "count" and isinstance(target, ExactDecimal):
        source = child.c[spec.field].type
        return scaled.aggregate(spec.function, child.c[spec.field], where, parent,
                                source.scale if isinstance(source, ExactDecimal) else 0,
                                field.precision, field.scale, target)
    if spec.function == "count":
        aggregate = sa.func.count()
    else:
        aggregate = getattr(sa.func, spec.function)(child.c[spec.field])
    value = sa.select(aggregate).where(*where).scalar_subquery()
    if spec.function in ("count", "sum"):
        value = sa.func.coalesce(value, 0)
    return value


def refresh_rollups(conn: Connection, model: Model, tables: Mapping[str, sa.Table], parent_name: str,
                    fields: Iterable[FieldDef], ids: list[str], clock: Clock | None = None) -> None:
    """Recompute `fields` (rollups of one parent object) for the parents `ids`: one UPDATE per batch."""
    parent = tables[parent_name]
    values = {f.name: rollup_value(model, tables, parent, f, clock) for f in fields}
    if not values:
        return
    for start in range(0, len(ids), BATCH):
        conn.execute(sa.update(parent).where(parent.c.id.in_(ids[start:start + BATCH])).values(values))


def refresh_all(conn: Connection, model: Model, tables: Mapping[str, sa.Table], parent_name: str,
                field: FieldDef) -> None:
    """Recompute one rollup field for every parent row in one statement (a new version for each)."""
    parent = tables[parent_name]
    conn.execute(sa.update(parent).values({field.name: rollup_value(model, tables, parent, field),
                                           "version": parent.c.version + 1}))


def deltas(child: ObjectDef, field: FieldDef, pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]
           ) -> dict[str, int | Decimal] | None:
    """{parent id: change} of a count or sum rollup without a filter after these (before, after)
    child writes; None where only a recompute is exact (min, max, avg, a filter, a sum that would
    round into the rollup's scale, a change too large to add safely)."""
    spec = field.rollup
    if spec.filter or spec.function not in ("count", "sum"):
        return None
    target = column_type(field)
    if spec.function == "sum":
        source = child.field(spec.field)
        if spec.field in child.read_time_formulas or not _exact_into(column_type(source), target):
            return None
    change: dict[str, int | Decimal] = {}
    with localcontext(Context(prec=80)):  # exact for any sum of 1000 values of up to 38 digits
        for sign, row in ((s, r) for before, after in pairs for s, r in ((-1, before), (1, after))):
            parent = row.get(spec.via) if row is not None else None
            if parent is None:
                continue
            value = 1 if spec.function == "count" else (row.get(spec.field) or 0)
            change[parent] = change.get(parent, 0) + sign * value
    limit = 10 ** (target.impl.precision - target.scale) if isinstance(target, ExactDecimal) else 2**62
    if any(abs(d) >= limit for d in change.values()):
        return None
    return {parent: d for parent, d in change.items() if d}


def _exact_into(source: sa.types.TypeEngine, target: sa.types.TypeEngine) -> bool:
    """Whether a sum of `source` values adds exactly to a `target` column (no rounding)."""
    if isinstance(target, ExactDecimal):
        return isinstance(source, sa.BigInteger) or (isinstance(source, ExactDecimal) and source.scale <= target.scale)
    return isinstance(source, sa.BigInteger) and isinstance(target, sa.BigInteger)


def add_deltas(conn: Connection, parent: sa.Table, fields: list[FieldDef],
               changes: Mapping[str, Mapping[str, int | Decimal]]) -> None:
    """r = r + change for each rollup in `fields` ({field name: {parent id: change}}): one
    executemany per batch of parents. A result beyond the rollup's precision is refused as a
    recompute's would be (PostgreSQL by its column type, SQLite by an explicit check)."""
    ids = sorted({i for name in changes for i in changes[name]})
    if not ids or not fields:
        return
    values = {f.name: _added(conn, parent.c[f.name], f) for f in fields}
    statement = sa.update(parent).where(parent.c.id == sa.bindparam("_id")).values(values)
    for start in range(0, len(ids), BATCH):
        conn.execute(statement, [{"_id": i, **{f"_d_{f.name}": changes[f.name].get(i, 0) for f in fields}}
                                 for i in ids[start:start + BATCH]])


def _added(conn: Connection, column: sa.Column, field: FieldDef) -> sa.ColumnElement:
    return dialect.incremented(conn, column, sa.bindparam(f"_d_{field.name}", type_=column.type))
