"""The engine's own `metacrm_*` tables, listed in one place.

Each package declares its tables beside the code that uses them, in a MetaData of its own
(storage: revisions, archived fields, counters, field history; identity: users, groups,
roles, shares and the audit log; security: tokens, sessions, login failures; automation:
the outbox, timers, approvals, SLA clocks, pools ...). Nothing registers a table by being
imported: this module names every owner, so the whole system schema is what it lists.

The database gets these tables from the versioned steps in engine/storage/system_migrations
(`Runtime.open` applies them); tests/test_system_migrations.py checks that the steps produce
exactly `system_metadata()`. A new system table goes into its owner's `TABLES` (and a step).
It sits beside the runtime because it must know every package that owns a table.
"""

from __future__ import annotations

import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.automation import tables as automation_tables
from metacrm.engine.identity import audit
from metacrm.engine.security import auth
from metacrm.engine.storage import metastore
from metacrm.engine.storage.system_migrations import version_table

#: owner -> its tables; the one list of the system schema
OWNERS: dict[str, tuple[sa.Table, ...]] = {
    "storage": (*metastore.TABLES, version_table),
    "identity": identity.TABLES,
    "audit": audit.TABLES,
    "security": auth.TABLES,
    "automation": automation_tables.TABLES,
}


def system_tables() -> tuple[sa.Table, ...]:
    """Every table of the engine's own, as the code declares it."""
    return tuple(table for tables in OWNERS.values() for table in tables)


def system_metadata() -> sa.MetaData:
    """A new MetaData holding a copy of every system table, so that foreign keys between
    owners (a token's user) resolve — for comparing with a database or creating the schema."""
    metadata = sa.MetaData()  # each table keeps the constraint names its owner's convention gave it
    for table in system_tables():
        table.to_metadata(metadata)
    return metadata
