"""Applying the system schema steps: once each, in order, recorded by name, under a lock.

Why not Alembic's script directory: the engine's steps ship inside the package and run
from `Runtime.open` on a connection we already hold, in our own transaction (SQLite
included); a plain ordered list of functions using Alembic's `Operations` (the same API
the metadata migrator uses) needs no alembic.ini, env.py or revision graph. Recording
applied step names, rather than one version number, lets steps written on parallel
branches both apply after a merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metacrm.engine.storage.database import serialise
from metacrm.metamodel.errors import MetacrmError

#: Which steps a database has had: schema steps by name, data upgrades as "data:<name>".
version_table = sa.Table(
    "metacrm_schema_version", sa.MetaData(),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)

#: The lock that lets one process at a time upgrade (see database.serialise).
LOCK_KEY = 0x6D657461


@dataclass(frozen=True)
class Migration:
    """One schema step. `name` is recorded in the database: never rename it."""

    name: str
    upgrade: Callable[[Operations, Connection], None]


@dataclass(frozen=True)
class DataUpgrade:
    """A one-time conversion of data in user tables: `run(conn, model)`."""

    name: str
    run: Callable[[Connection, Any], None]

    @property
    def key(self) -> str:
        return f"data:{self.name}"


class SchemaVersionError(MetacrmError, RuntimeError):
    """The database has steps this code does not know: a newer metacrm upgraded it."""


def upgrade(conn: Connection, migrations: Sequence[Migration], data_upgrades: Sequence[DataUpgrade],
            load_model: Callable[[Connection], Any]) -> list[str]:
    """Apply the steps `conn`'s database lacks, in the caller's transaction; returns their names.

    A database without any `metacrm_*` table is new: it gets every schema step, and its
    data upgrades are recorded without running (there is no old data). A database made
    by 0.1.0 (system tables, no version table) starts at the baseline.
    """
    wanted = [m.name for m in migrations] + [d.key for d in data_upgrades]
    if applied(conn) == set(wanted):
        return []
    serialise(conn, LOCK_KEY)
    existing = set(sa.inspect(conn).get_table_names())
    fresh = not any(name.startswith("metacrm_") for name in existing)
    if version_table.name not in existing:
        version_table.create(conn)
    had = applied(conn)
    unknown = sorted(had - set(wanted))
    if unknown:
        raise SchemaVersionError(f"this database was upgraded by a newer metacrm (steps unknown here: "
                                 f"{', '.join(unknown)}); use that version or a newer one")
    ops = Operations(MigrationContext.configure(conn))
    done = []
    for step in migrations:
        if step.name not in had:
            step.upgrade(ops, conn)
            done.append(_record(conn, step.name))
    pending = [d for d in data_upgrades if d.key not in had]
    model = load_model(conn) if pending and not fresh else None
    for data in pending:
        if not fresh:
            data.run(conn, model)
        done.append(_record(conn, data.key))
    return done


def applied(conn: Connection) -> set[str]:
    """The names of the steps the database has had (none before versioning)."""
    if not sa.inspect(conn).has_table(version_table.name):
        return set()
    return set(conn.execute(sa.select(version_table.c.name)).scalars())


def _record(conn: Connection, name: str) -> str:
    conn.execute(version_table.insert().values(name=name, applied_at=datetime.now(timezone.utc).replace(tzinfo=None)))
    return name
