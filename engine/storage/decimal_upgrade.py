"""Upgrade SQLite databases whose decimal columns an earlier release stored as floats.

Until this release, decimal, currency and percent columns (and decimal formulas and
rollups) on SQLite were declared NUMERIC(p, s) and held 64-bit floats, so values past
about 15 significant digits were rounded. They are now BIGINT columns holding
value × 10^scale (engine.storage.scaled). PostgreSQL always had NUMERIC(p, s) and
needs nothing.

`upgrade_decimal_storage(conn, model)` converts every such column of the model's
tables, archived columns included, in the caller's transaction: each stored float
becomes the value the earlier release showed for it (its shortest decimal form
rounded to the column's scale), then the table is rebuilt with BIGINT columns. It is
idempotent: columns already BIGINT are not touched, so running it again does nothing.
It is self-contained (a connection and a model in, the converted columns out) so that
a versioned migration can call it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metacrm.engine.storage.migrator import ApplyError
from metacrm.engine.storage.scaled import to_scaled
from metacrm.engine.storage.tables import NAMING_CONVENTION
from metacrm.metamodel.model import Model

BATCH = 1000
SAMPLES = 5


class DecimalUpgradeError(ApplyError):
    """Stored values that have no exact form; nothing was changed."""


def legacy_decimal_columns(conn: Connection, model: Model) -> dict[str, dict[str, int]]:
    """{table: {column: scale}} of the model's tables' columns still declared NUMERIC(p, s) on SQLite."""
    if conn.dialect.name != "sqlite":
        return {}
    inspector = sa.inspect(conn)
    found: dict[str, dict[str, int]] = {}
    for obj in model.objects.values():
        if not inspector.has_table(obj.table_name):
            continue
        for column in inspector.get_columns(obj.table_name):
            kind = column["type"]
            if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale is not None:
                found.setdefault(obj.table_name, {})[column["name"]] = kind.scale
    return found


def upgrade_decimal_storage(conn: Connection, model: Model) -> list[str]:
    """Convert float-stored decimal columns to scaled integers; returns "table.column" for each
    column converted (empty when there was nothing to do, and on PostgreSQL).

    Run it inside `Database.schema_change()`: rebuilding a SQLite table needs foreign keys
    off. Raises DecimalUpgradeError, changing nothing, if a stored value has no exact form
    (infinite, or too large for a 64-bit scaled integer)."""
    legacy = legacy_decimal_columns(conn, model)
    problems: list[str] = []
    for table, columns in legacy.items():
        problems += _rewrite_values(conn, table, columns)
    if problems:
        raise DecimalUpgradeError("cannot upgrade the decimal columns; nothing was changed:\n  " + "\n  ".join(problems))
    ops = Operations(MigrationContext.configure(conn, opts={"target_metadata": None}))
    for table, columns in legacy.items():
        before = _structures(conn, table)
        with ops.batch_alter_table(table, recreate="always", naming_convention=NAMING_CONVENTION) as batch:
            for column in columns:
                batch.alter_column(column, type_=sa.BigInteger())
        if _structures(conn, table) != before:
            raise DecimalUpgradeError(f"cannot upgrade {table}: rebuilding it would lose an index, "
                                      "a constraint or a foreign key; nothing was changed")
    return [f"{table}.{column}" for table, columns in legacy.items() for column in columns]


def _rewrite_values(conn: Connection, table: str, columns: dict[str, int]) -> list[str]:
    """Replace each float by its scaled integer, in keyset batches; returns the values that
    have no exact form (by column, with the first few row ids)."""
    names = list(columns)
    source = sa.table(table, sa.column("id"), *(sa.column(n) for n in names))
    update = sa.update(source).where(source.c.id == sa.bindparam("_id")).values(
        {n: sa.bindparam(f"_{n}") for n in names})
    bad: dict[str, list[Any]] = {}
    last = None
    while True:
        query = sa.select(source.c.id, *(source.c[n] for n in names)).order_by(source.c.id).limit(BATCH)
        if last is not None:
            query = query.where(source.c.id > last)
        rows = conn.execute(query).all()
        if not rows:
            break
        params = []
        for row in rows:
            values = {}
            for name, raw in zip(names, row[1:]):
                try:
                    values[f"_{name}"] = _scaled(raw, columns[name])
                except ValueError:
                    bad.setdefault(name, []).append((row[0], raw))
                    values[f"_{name}"] = raw
            params.append({"_id": row[0], **values})
        conn.execute(update, params)
        last = rows[-1][0]
    return [f"{table}.{name}: {len(samples)} value(s) cannot be stored exactly (first: "
            + ", ".join(f"{rid}: {raw!r}" for rid, raw in samples[:SAMPLES]) + ")" for name, samples in bad.items()]


def _scaled(raw: Any, scale: int) -> int | None:
    """The scaled integer of a value an earlier release stored: what it showed, exactly."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(raw)
    try:  # the earlier release read a value back as Decimal(str(value)).quantize(10^-scale)
        shown = Decimal(str(raw).strip()).quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        raise ValueError(raw) from None
    return to_scaled(shown, scale)


def _structures(conn: Connection, table: str) -> tuple:
    """What a rebuild must keep: indexes, unique constraints, foreign keys (names and columns)."""
    inspector = sa.inspect(conn)
    indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table))
    uniques = sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table))
    fks = sorted((tuple(f["constrained_columns"]), f["referred_table"], (f.get("options") or {}).get("ondelete"))
                 for f in inspector.get_foreign_keys(table))
    return indexes, uniques, fks
