"""Counters for auto-numbers, safe under concurrent writers on both databases.

An upsert that increments and returns in one statement: two transactions asking for
numbers at once are serialized by the row lock, never handed the same number.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from metacrm.engine.storage.dialect import upsert
from metacrm.engine.storage.metastore import SYSTEM

sequence_table = SYSTEM["metacrm_sequence"]


def reserve(conn: Connection, object_name: str, field: str, period: str, count: int = 1) -> int:
    """Reserve `count` consecutive numbers; returns the first."""
    statement = upsert(conn, sequence_table).values(object=object_name, field=field, period=period, value=count)
    statement = statement.on_conflict_do_update(
        index_elements=["object", "field", "period"],
        set_={"value": sequence_table.c.value + count},
    ).returning(sequence_table.c.value)
    last = conn.execute(statement).scalar_one()
    return last - count + 1
