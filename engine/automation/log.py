"""The automation execution log: every rule execution, buffered and written in batches.

Writing a log row inside every record write would cost more than the rules themselves
(on SQLite, one INSERT per write is a large share of a small write), so entries are
buffered in memory and flushed in one batch: when the buffer holds `max_entries`, when
the oldest entry is older than `max_age` seconds (checked after each write), by the worker
after each pass, and when the runtime closes. A crash can lose the last second of log
lines — never a record write, an outbox entry or a timer, which stay transactional.

Lines are held with the connection that wrote them until its transaction ends: a commit
hands them to the buffer, a rollback drops them (the executions they describe were undone;
failures that roll a write back are logged separately, at once).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import execution_log


PENDING = "metacrm_pending_automation_log"


class ExecutionLog:
    def __init__(self, db, max_entries: int = 500, max_age: float = 1.0):
        self.db, self.max_entries, self.max_age = db, max_entries, max_age
        self._entries: list[dict[str, Any]] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        event.listen(db.engine, "commit", self._on_commit)
        event.listen(db.engine, "rollback", self._on_rollback)

    def add_pending(self, conn: Connection, entries: list[dict[str, Any]]) -> None:
        """Lines written inside `conn`'s transaction: kept only if it commits."""
        if entries:
            conn.info.setdefault(PENDING, []).extend(entries)

    def _on_commit(self, conn: Connection) -> None:
        self.add(conn.info.pop(PENDING, []))

    def _on_rollback(self, conn: Connection) -> None:
        conn.info.pop(PENDING, None)

    def add(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        with self._lock:
            if not self._entries:
                self._oldest = time.monotonic()
            self._entries.extend(entries)

    def maybe_flush(self) -> None:
        """Flush if the buffer is full or old; call only outside a transaction."""
        if self._entries and (len(self._entries) >= self.max_entries
                              or time.monotonic() - self._oldest >= self.max_age):
            self.flush()

    def flush(self) -> int:
        with self._lock:
            entries, self._entries = self._entries, []
        if entries:
            with self.db.begin() as conn:
                conn.execute(execution_log.insert(), entries)
        return len(entries)
