"""The versioned schema of the engine's own `metacrm_*` tables, and one-time data upgrades.

`MIGRATIONS` is the ordered chain of schema steps; `DATA_UPGRADES` are one-time
conversions of the data in user (object) tables, run after the schema steps, with the
live model. Each step is applied once and recorded by name in `metacrm_schema_version`;
`runner.upgrade` applies what a database lacks (Runtime.open does this: `metacrm init`,
`serve`, `demo` and every other command).

To change a system table: change its declaration (engine/storage/tables.py,
engine/automation/tables.py, engine/identity/*, engine/security/auth.py; a new table also goes
into its owner's TABLES, which engine/system_schema.py lists) AND add a step here, `m000N_what.py` with
`upgrade(op, conn)` using alembic `Operations` (batch mode where SQLite cannot ALTER).
Never edit or reorder an applied step. tests/test_system_migrations.py checks that the
chain produces exactly the declared tables.
"""

from __future__ import annotations

from metacrm.engine.storage.system_migrations import (m0001_baseline, m0002_delivery_ids_and_timer_attempts,
                                              m0003_address_indexes, m0004_comments_and_follows)
from metacrm.engine.storage.system_migrations import runner
from metacrm.engine.storage.system_migrations.runner import DataUpgrade, Migration, SchemaVersionError, version_table

MIGRATIONS: list[Migration] = [
    Migration("0001_baseline", m0001_baseline.upgrade),
    Migration("0002_delivery_ids_and_timer_attempts", m0002_delivery_ids_and_timer_attempts.upgrade),
    Migration("0003_address_indexes", m0003_address_indexes.upgrade),
    Migration("0004_comments_and_follows", m0004_comments_and_follows.upgrade),
]

#: One-time upgrades of the data in user tables (e.g. converting stored values after a
#: storage change), each `run(conn, model)` with the model of the newest metadata
#: revision, in this order, after the schema steps, in the same transaction. A database
#: created fresh has no old data: there they are recorded as applied without running.
DATA_UPGRADES: list[DataUpgrade] = []


def upgrade(conn, load_model) -> list[str]:
    """Bring `conn`'s database to the newest system schema (see runner.upgrade)."""
    return runner.upgrade(conn, MIGRATIONS, DATA_UPGRADES, load_model)


def is_current(conn) -> bool:
    """Whether the database has every step (a quick read: no lock, no writes)."""
    return runner.applied(conn) == {m.name for m in MIGRATIONS} | {d.key for d in DATA_UPGRADES}


__all__ = ["DATA_UPGRADES", "MIGRATIONS", "DataUpgrade", "Migration", "SchemaVersionError", "is_current", "upgrade",
           "version_table"]
