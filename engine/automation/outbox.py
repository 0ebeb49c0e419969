"""The durable outbox: effects that leave the database, written in the triggering transaction.

A worker delivers them after commit. Nothing is sent for a write that rolled back,
and nothing is lost if the process dies after commit: the row is still there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import outbox

DEFAULT_MAX_ATTEMPTS = 5


def enqueue(conn: Connection, kind: str, payload: Mapping[str, Any], now: datetime, *, rule: str | None = None,
            record_id: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> int:
    result = conn.execute(outbox.insert().values(
        kind=kind, payload=dict(payload), status="pending", attempts=0, max_attempts=max_attempts,
        next_attempt_at=now, created_at=now, rule=rule, record_id=record_id))
    return result.inserted_primary_key[0]
