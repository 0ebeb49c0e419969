"""The audit log: logins, permission and metadata changes, record writes, exports, privacy
requests. Append-only: the engine offers no update or delete of audit entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.storage.columns import ID_TYPE, JSONText, UTCDateTime
from metacrm.engine.storage.tables import new_metadata

METADATA = new_metadata()

audit_log = sa.Table(
    "metacrm_audit", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("user_id", ID_TYPE),
    sa.Column("event", sa.Text, nullable=False),   # login, login_failed, metadata_apply, record_create, export, ...
    sa.Column("object", sa.Text),
    sa.Column("record_id", ID_TYPE),
    sa.Column("detail", JSONText),
    sa.Column("address", sa.Text),
    sa.Index("ix_metacrm_audit_at", "at"),
    sa.Index("ix_metacrm_audit_event", "event", "at"),
    sa.Index("ix_metacrm_audit_address", "address", "at"),
)
TABLES: tuple[sa.Table, ...] = (audit_log,)


def record(conn: Connection, event: str, at: datetime, *, user_id: str | None = None, object_name: str | None = None,
           record_id: str | None = None, detail: Any = None, address: str | None = None) -> None:
    conn.execute(audit_log.insert().values(at=at, user_id=user_id, event=event, object=object_name,
                                           record_id=record_id, detail=detail, address=address))


def entries(conn: Connection, *, event: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if event:
        query = query.where(audit_log.c.event == event)
    return [dict(r._mapping) for r in conn.execute(query)]
