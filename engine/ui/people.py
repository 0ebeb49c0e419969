"""Names of users by id, for pages that show who did what (one query for a page's users)."""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.identity import users


def names(conn: Connection, user_ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({str(u) for u in user_ids if u})
    if not wanted:
        return {}
    rows = conn.execute(sa.select(users.c.id, users.c.name).where(users.c.id.in_(wanted)))
    return {str(r.id): r.name for r in rows}


def search(conn: Connection, text: str, limit: int = 20) -> list[tuple[str, str]]:
    """Active users whose name or e-mail contains `text` (case-insensitive), by name."""
    statement = sa.select(users.c.id, users.c.name).where(users.c.active.is_(True)).order_by(users.c.name)
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(sa.or_(sa.func.lower(users.c.name).like(pattern, escape="\\"),
                                           sa.func.lower(users.c.email).like(pattern, escape="\\")))
    return [(str(r.id), r.name) for r in conn.execute(statement.limit(limit))]
