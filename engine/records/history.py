"""Field history of one record, page by page, newest first, as one actor may see it.

The record must be one the actor may read (RecordService.get decides: otherwise it does not
exist for them); rows of fields hidden from them are left out in SQL, matched by field id as
`RecordService.history` does, so a renamed field keeps its rows and a hidden one stays out
whatever it was called then. Pages continue with a keyset cursor (changed_at, id), bound to
the record it came from.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import QueryError
from metacrm.engine.storage.metastore import SYSTEM as SYSTEM_TABLES
from metacrm.engine.security.access import history_fields

history_table = SYSTEM_TABLES["metacrm_field_history"]
MAX_PAGE = 1000


@dataclass
class HistoryPage:
    items: list[dict[str, Any]]  # {"at", "user", "field", "old", "new"}
    next_cursor: str | None


def history_page(records, object_name: str, record_id: str, *, actor: Actor, limit: int = 50,
                 cursor: str | None = None, conn: Connection | None = None) -> HistoryPage:
    obj, _ = records.object_and_table(object_name)
    with records.reading(conn) as c:
        record = records.get(object_name, record_id, actor=actor, conn=c)  # NotFound if not readable
        h = history_table
        statement = (sa.select(h.c.id, h.c.field_id, h.c.field, h.c.old_value, h.c.new_value, h.c.changed_by,
                               h.c.changed_at)
                     .where(h.c.object == obj.name, h.c.record_id == record["id"])
                     .order_by(h.c.changed_at.desc(), h.c.id.desc()).limit(max(1, min(limit, MAX_PAGE)) + 1))
        names = history_fields(obj, actor)
        if names is not None:
            statement = statement.where(h.c.field_id.in_(sorted(names)))
        if cursor:
            at, last = _decode(cursor, obj.name, record["id"])
            statement = statement.where(sa.or_(h.c.changed_at < at, sa.and_(h.c.changed_at == at, h.c.id < last)))
        rows = c.execute(statement).all()
    more = len(rows) > limit
    rows = rows[:limit]
    current = {f.id: f.name for f in obj.fields}
    items = [{"at": r.changed_at, "user": r.changed_by, "field": current.get(r.field_id, r.field),
              "old": r.old_value, "new": r.new_value} for r in rows]
    following = _encode(rows[-1].changed_at, rows[-1].id, obj.name, record["id"]) if more and rows else None
    return HistoryPage(items, following)


def _encode(at: datetime, row_id: int, object_name: str, record_id: str) -> str:
    body = json.dumps({"at": at.isoformat(), "id": row_id, "r": f"{object_name}/{record_id}"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def _decode(cursor: str, object_name: str, record_id: str) -> tuple[datetime, int]:
    try:
        if len(cursor) > 512:
            raise ValueError
        body = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        if not isinstance(body, dict) or body.get("r") != f"{object_name}/{record_id}":
            raise ValueError
        at, row_id = datetime.fromisoformat(body["at"]), body["id"]
        if at.tzinfo is None or isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 < row_id < 2**63:
            raise ValueError
        return at, row_id
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise QueryError("invalid cursor: it is damaged or belongs to another record's history; "
                         "start again from the first page", "cursor") from None
