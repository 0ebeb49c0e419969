"""A user's in-app notifications (written by `notify` actions through the outbox): the unread
count in the page header, the inbox, marking read. Every function takes the user's id and
touches only that user's rows, so no one reads or marks another's notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import notifications as n

PAGE = 50


def unread_count(conn: Connection, user_id: str | None) -> int:
    if not user_id:
        return 0
    return conn.execute(sa.select(sa.func.count()).select_from(n)
                        .where(n.c.user_id == user_id, n.c.read_at.is_(None))).scalar_one()


def latest(conn: Connection, user_id: str, *, before: int | None = None, limit: int = PAGE) -> list[dict[str, Any]]:
    """The user's notifications, newest first (keyset by id: `before` is the last id seen)."""
    statement = sa.select(n.c.id, n.c.message, n.c.object, n.c.record_id, n.c.created_at, n.c.read_at).where(
        n.c.user_id == user_id).order_by(n.c.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(n.c.id < before)
    return [dict(r._mapping) for r in conn.execute(statement)]


def mark_read(conn: Connection, user_id: str, ids: Iterable[int] | None, now: datetime) -> int:
    """Mark these notifications of the user read (all unread ones when `ids` is None); others' ids are ignored."""
    statement = sa.update(n).where(n.c.user_id == user_id, n.c.read_at.is_(None)).values(read_at=now)
    if ids is not None:
        statement = statement.where(n.c.id.in_(list(ids)))
    return conn.execute(statement).rowcount
