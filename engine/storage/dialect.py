"""The statements whose form differs between SQLite and PostgreSQL, one definition each.

The layers above build their queries with SQLAlchemy Core and call these where the two
databases need different SQL, so no module outside engine/storage asks which database it
is on. (Transactions, timeouts, the schema-change lock and error classes are in
database.py; exact decimals in scaled.py and columns.py.)
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from metacrm.engine.storage import scaled
from metacrm.engine.storage.columns import ExactDecimal


def upsert(conn: Connection, table: sa.Table):
    """An INSERT for `table` that takes `.on_conflict_do_update(...)`: both databases spell
    INSERT ... ON CONFLICT the same way, but SQLAlchemy offers it only through each dialect's
    own insert construct, so the caller gets the one of `conn`'s database."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def locked(conn: Connection, statement: sa.Select, *, key_share: bool = False) -> sa.Select:
    """`statement` locking the rows it reads until the transaction ends.

    PostgreSQL locks rows: FOR UPDATE, or with `key_share` FOR NO KEY UPDATE — the lock an
    UPDATE of non-key columns takes, which does not wait for the KEY SHARE locks concurrent
    inserts of children take on their parent (FOR UPDATE would, and two such writers
    deadlock). SQLite has no row locks and no FOR UPDATE syntax: a writing transaction
    already holds the whole database's write lock from its BEGIN IMMEDIATE, so the statement
    is returned as it is."""
    if conn.dialect.name != "postgresql":
        return statement
    return statement.with_for_update(key_share=key_share)


def incremented(conn: Connection, column: sa.Column, delta: sa.ColumnElement) -> sa.ColumnElement:
    """`column + delta` for an UPDATE (NULL counts as 0), refused when the result does not fit.

    PostgreSQL adds NUMERIC values exactly and its column type refuses a result beyond the
    precision. On SQLite an exact decimal is a scaled 64-bit integer (scaled.py): `delta` is
    bound scaled too, and since SQLite would silently turn an int64 overflow into a float, the
    sum is checked against the precision (or the int64 range) and raises a numeric overflow."""
    if conn.dialect.name != "sqlite":
        return sa.func.coalesce(column, 0) + delta
    total = sa.func.coalesce(sa.type_coerce(column, scaled._BIG), 0) + delta
    bound = 10 ** column.type.impl.precision if isinstance(column.type, ExactDecimal) else scaled.INT64_MAX
    return sa.case((sa.func.abs(total) >= scaled._lit(bound), scaled._overflow()), else_=total)
