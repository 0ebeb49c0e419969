"""A user's in-app notifications: list, unread count, mark read — as that user may see them.

Notifications are written by the outbox worker (engine.automation.delivery) for each recipient.
A notification about a record the user can no longer read (it was reassigned, unshared, or
deleted) says something about that record, so it is left out of the list and the count, and
cannot be marked read: for the user it does not exist. The test is the user's read scope on
the record's object (RecordService.access), in SQL, for the objects their notifications name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import notifications
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import QueryError

n = notifications
MAX_PAGE = 500


@dataclass
class NotificationPage:
    items: list[dict[str, Any]]  # {"id", "message", "object", "record_id", "created_at", "read"}
    next_cursor: str | None
    unread: int


def visible(records, conn: Connection, actor: Actor) -> sa.ColumnElement:
    """The caller's notifications that do not name a record (or object) hidden from them."""
    mine = n.c.user_id == actor.user_id
    objects = conn.execute(sa.select(n.c.object).where(mine, n.c.object.is_not(None)).distinct()).scalars().all()
    allowed = [n.c.object.is_(None)]
    model = records.runtime.model
    for name in objects:
        if name not in model:
            continue  # the object was removed: nothing left to read
        obj, table = records.object_and_table(name)
        access = records.access(obj, actor, conn)
        if access.rights.read == "none":
            continue
        readable = sa.select(table.c.id)
        scope = access.read_clause(table)
        if scope is not None:
            readable = readable.where(scope)
        allowed.append(sa.and_(n.c.object == name, sa.or_(n.c.record_id.is_(None), n.c.record_id.in_(readable))))
    return sa.and_(mine, sa.or_(*allowed))


def page(records, actor: Actor, *, unread: bool | None = None, limit: int = 50, cursor: str | None = None,
         conn: Connection | None = None) -> NotificationPage:
    """Newest first; `unread` True/False keeps only unread/read ones; `cursor` continues a page."""
    with records.reading(conn) as c:
        shown = visible(records, c, actor)
        statement = sa.select(n.c.id, n.c.message, n.c.object, n.c.record_id, n.c.created_at, n.c.read_at).where(shown)
        if unread is not None:
            statement = statement.where(n.c.read_at.is_(None) if unread else n.c.read_at.is_not(None))
        if cursor:
            statement = statement.where(n.c.id < _position(cursor))
        limit = max(1, min(limit, MAX_PAGE))
        rows = c.execute(statement.order_by(n.c.id.desc()).limit(limit + 1)).all()
        count = _count_unread(c, shown)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"id": r.id, "message": r.message, "object": r.object, "record_id": r.record_id,
              "created_at": r.created_at, "read": r.read_at is not None} for r in rows]
    return NotificationPage(items, str(rows[-1].id) if more and rows else None, count)


def unread_count(records, actor: Actor, conn: Connection | None = None) -> int:
    with records.reading(conn) as c:
        return _count_unread(c, visible(records, c, actor))


def mark_read(records, actor: Actor, notification_id: Any) -> bool:
    """Mark one of the caller's notifications read; False if it is not one they can see."""
    if not valid_id(notification_id):
        return False
    with records.transaction() as c:
        shown = visible(records, c, actor)
        found = c.execute(sa.select(n.c.id, n.c.read_at).where(shown, n.c.id == notification_id)).first()
        if found is None:
            return False
        if found.read_at is None:
            c.execute(sa.update(n).where(n.c.id == notification_id).values(read_at=actor.clock.now()))
        return True


def mark_all_read(records, actor: Actor) -> int:
    """Mark every unread notification the caller can see read; returns how many."""
    with records.transaction() as c:
        ids = sa.select(n.c.id).where(visible(records, c, actor), n.c.read_at.is_(None))
        return c.execute(sa.update(n).where(n.c.id.in_(ids.scalar_subquery()))
                         .values(read_at=actor.clock.now())).rowcount


def _count_unread(conn: Connection, shown: sa.ColumnElement) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(n).where(shown, n.c.read_at.is_(None))).scalar_one()


MAX_ID = 2**63 - 1  # a BIGINT: a larger number names no notification (and must not reach the database)


def valid_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _position(cursor: str) -> int:
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= 19
            and valid_id(int(cursor))):
        raise QueryError("invalid cursor: use the `next` link of the previous page", "cursor")
    return int(cursor)
