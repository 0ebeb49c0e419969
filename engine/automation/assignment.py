"""Choosing an owner: round robin in a group, least loaded, or a rule table; with a fallback."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import assignment_cursors
from metacrm.engine.records.query import where_clause
from metacrm.engine import identity
from metacrm.engine.storage import dialect


def round_robin(conn: Connection, key: str, members: list[str]) -> str | None:
    """The next member after the one chosen last time for `key` (a counter row, locked by its upsert)."""
    if not members:
        return None
    statement = dialect.upsert(conn, assignment_cursors).values(key=key, position=0).on_conflict_do_update(
        index_elements=["key"], set_={"position": assignment_cursors.c.position + 1}
    ).returning(assignment_cursors.c.position)
    position = conn.execute(statement).scalar_one()
    return members[position % len(members)]


def least_loaded(conn: Connection, table: sa.Table, obj, field: str, members: list[str], open_filter: Any,
                 clock) -> str | None:
    """The member owning the fewest matching records (ties: the first by id), counted in SQL."""
    if not members:
        return None
    query = sa.select(table.c[field], sa.func.count()).where(table.c[field].in_(members)).group_by(table.c[field])
    clause = where_clause(obj, table, open_filter, clock) if open_filter else None
    if clause is not None:
        query = query.where(clause)
    load = dict(conn.execute(query).all())
    return min(members, key=lambda m: (load.get(m, 0), m))


def choose(context, action, names: dict[str, Any]) -> str | None:
    """The user id an assign action picks for the current record, or None."""
    options = action.options
    conn, event = context.conn, context.event
    obj, table = event.obj, context.tables[event.obj.name]
    field = options.get("field", "owner")

    def from_target(target: dict[str, Any]) -> str | None:
        if target.get("user"):
            return target["user"]
        group = target.get("group")
        if not group:
            return None
        members = identity.group_member_ids(conn, group)
        if options["strategy"] == "least_loaded":
            return least_loaded(conn, table, obj, field, members, options.get("open_filter"), event.actor.clock)
        return round_robin(conn, f"{obj.name}.{field}.{group}", members)

    chosen = None
    if options["strategy"] == "rules":
        for expression, target in action.conditions:
            if context.evaluate(expression, names) is True:
                chosen = from_target(target)
                break
    else:
        chosen = from_target({"group": options.get("group")})
    if chosen is None and options.get("fallback"):
        chosen = from_target(options["fallback"])
    return chosen
