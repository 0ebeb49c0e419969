"""Rollup fields: a parent's count/sum/min/max/avg over its children, kept in SQL.

After children change, the affected parents get one UPDATE per batch with a correlated
subquery per rollup; no child rows are loaded into Python. Which parents, and what
happens to them afterwards (version, formulas, automation), is engine.records.derived.
Decimal rollups are exact on both databases (engine.storage.scaled): sum, min and max as
stored, avg rounded half away from zero to the rollup's scale, and a value too large for
the rollup's precision is refused, as PostgreSQL refuses it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.expressions.evaluator import Clock
from metacrm.engine.records.query import where_clause
from metacrm.engine.storage import scaled
from metacrm.engine.storage.columns import ExactDecimal, column_type
from metacrm.metamodel.model import FieldDef, Model

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
