"""Metadata kept in the database: numbered revisions and archived fields.

A revision stores the full set of object documents as applied, who applied them,
when, and a summary of the changes. The newest revision is the live model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.storage import system_migrations
from metacrm.engine.storage.tables import new_metadata, system_tables
from metacrm.metamodel.compiler import compile_model
from metacrm.metamodel.loader import Document
from metacrm.metamodel.model import Model

#: Storage's own tables (revisions, archived fields, counters, field history), as the code
#: uses them. The other packages declare theirs beside their code; engine.system_schema lists
#: them all. The database gets them from the versioned steps in engine.storage.system_migrations,
#: which must produce exactly those declarations.
METADATA = new_metadata()
SYSTEM = system_tables(METADATA)
TABLES: tuple[sa.Table, ...] = tuple(SYSTEM.values())
revision_table = SYSTEM["metacrm_revision"]
archived_table = SYSTEM["metacrm_archived_field"]


@dataclass(frozen=True)
class Revision:
    id: int
    created_at: datetime
    author: str | None
    summary: list[str]


def ensure_system_tables(conn: Connection) -> list[str]:
    """Bring the engine's own tables to the newest version (idempotent; a quick read when current).
    Returns the names of the steps applied now."""
    return system_migrations.upgrade(conn, load_model)


def latest_revision_id(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(revision_table.name):
        return 0
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(revision_table.c.id), 0))).scalar_one()


def current_revision(conn: Connection) -> int:
    """The newest revision number, for a per-request freshness check (the tables exist)."""
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(revision_table.c.id), 0))).scalar_one()


def load_documents(conn: Connection, revision: int | None = None) -> tuple[int, dict[str, dict[str, Any]]]:
    """The documents of a revision (default: the newest), as {object name: document}."""
    if not sa.inspect(conn).has_table(revision_table.name):
        return 0, {}
    query = sa.select(revision_table.c.id, revision_table.c.documents)
    query = query.where(revision_table.c.id == revision) if revision else query.order_by(revision_table.c.id.desc())
    row = conn.execute(query.limit(1)).first()
    return (row.id, row.documents) if row else (0, {})


def load_model(conn: Connection) -> Model:
    """Compile the newest stored revision into a Model (an empty one if there is none)."""
    revision, documents = load_documents(conn)
    docs = [Document(data=doc, source=f"revision {revision}: {name}") for name, doc in documents.items()]
    return compile_model(docs, revision=revision)


def save_revision(conn: Connection, revision: int, documents: dict[str, Any], summary: list[str], author: str | None) -> None:
    """Insert revision `revision`; a concurrent apply that took the number first makes this fail."""
    conn.execute(
        revision_table.insert().values(
            id=revision, created_at=datetime.now(timezone.utc), author=author,
            summary=summary, documents=documents,
        )
    )


def revisions(conn: Connection, limit: int = 50) -> list[Revision]:
    rows = conn.execute(
        sa.select(revision_table.c.id, revision_table.c.created_at, revision_table.c.author, revision_table.c.summary)
        .order_by(revision_table.c.id.desc()).limit(limit)
    )
    return [Revision(r.id, r.created_at, r.author, r.summary) for r in rows]


def archived_fields(conn: Connection, object_name: str | None = None) -> list[Any]:
    """Archived (removed but kept) fields that have not been restored, newest first."""
    if not sa.inspect(conn).has_table(archived_table.name):
        return []
    query = sa.select(archived_table).where(archived_table.c.restored_at.is_(None))
    if object_name:
        query = query.where(archived_table.c.object == object_name)
    return list(conn.execute(query.order_by(archived_table.c.id.desc())))
