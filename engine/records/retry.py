"""Retry a write the database gave up on because of another transaction, not because of it.

PostgreSQL breaks a deadlock by aborting one of the transactions (deadlock_detected, 40P01)
and may refuse a transaction that cannot be serialized (serialization_failure, 40001); SQLite
answers "database is locked" (SQLITE_BUSY) when another writer held the file past the busy
timeout. None of these says anything about the request: the whole transaction was rolled
back, so the engine runs the write again (a few times, after a short random pause that
grows) instead of reporting a concurrency conflict to the user. Only a transaction the
engine owns can be retried; inside a caller's transaction the error goes to the caller.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from typing import Callable, TypeVar

import sqlalchemy as sa

log = logging.getLogger("metacrm.records")
ATTEMPTS = 5
PAUSE = 0.02  # seconds; doubled after each attempt, with jitter
_STATES = {"40P01", "40001"}

F = TypeVar("F", bound=Callable)


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a deadlock, a serialization failure or a busy SQLite database."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated:
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _STATES:
        return True
    return (getattr(orig, "sqlite_errorname", None) or "").startswith("SQLITE_BUSY")


def retrying(method: F) -> F:
    """Run `method` again when its own transaction (no `conn` given) failed transiently."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if kwargs.get("conn") is not None:
            return method(*args, **kwargs)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return method(*args, **kwargs)
            except sa.exc.DBAPIError as exc:
                if attempt == ATTEMPTS or not transient(exc):
                    raise
                log.info("%s: %s; retrying (attempt %s)", method.__name__, str(exc.orig).splitlines()[0], attempt + 1)
                time.sleep(random.uniform(0.5, 1.5) * PAUSE * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    return wrapper  # type: ignore[return-value]
