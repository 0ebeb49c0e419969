"""Counts and sums by group (a kanban's column totals), computed by the database.

One `SELECT group, count(*), sum(field) ... GROUP BY group` with the actor's read scope, the
list's filter and search: the totals a user sees are over exactly the records they may see,
and no record is loaded to compute them. A field hidden from the actor can be neither the
group nor the sum (the caller gets a QueryError, as for a filter on it), so a total never
reveals a hidden value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.records import query as q
from metacrm.engine.identity.actor import Actor

SUMMABLE = frozenset({"integer", "decimal", "currency", "percent"})


@dataclass(frozen=True)
class GroupTotal:
    count: int
    sum: Decimal | int | None


def group_totals(service, object_name: str, group_by: str, sum_field: str | None, *, actor: Actor,
                 filter: Any = None, search: str | None = None,
                 conn: Connection | None = None) -> dict[Any, GroupTotal]:
    """{group value: GroupTotal} over the records `actor` may read that match `filter` and `search`."""
    obj, table = service.object_and_table(object_name)
    with service.reading(conn) as c:
        access = service.access(obj, actor, c)
        hidden = access.hidden
        for name in (group_by, sum_field):
            if name is not None and (name in hidden or not obj.has_field(name)):
                raise q.QueryError(f"unknown field {name!r}", name)
        if sum_field is not None and (obj.field(sum_field).storage_type not in SUMMABLE
                                      or sum_field in obj.read_time_formulas):
            raise q.QueryError(f"cannot sum {sum_field!r}", sum_field)
        group = table.c[group_by]
        columns = [group, sa.func.count().label("n")]
        if sum_field is not None:
            column = table.c[sum_field]
            columns.append(sa.func.sum(column, type_=column.type).label("total"))
        statement = sa.select(*columns).group_by(group)
        for clause in (access.read_clause(table), q.where_clause(obj, table, filter, actor.clock, hidden),
                       q.search_clause(obj, table, search, hidden)):
            if clause is not None:
                statement = statement.where(clause)
        rows = c.execute(statement).all()
    return {row[0]: GroupTotal(row.n, row.total if sum_field is not None else None) for row in rows}
