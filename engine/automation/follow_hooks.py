"""Followers of a record hear of its updates: a plugin of the record lifecycle.

Registered on every Runtime's plugin manager (as `metacrm.follows`) beside the built-in
automation, so RecordService knows nothing of follows; see engine/automation/comments.py."""

from __future__ import annotations

from metacrm.engine.automation import comments
from metacrm.engine.plugins import hookimpl

NAME = "metacrm.follows"


@hookimpl
def metacrm_after_write(service, conn, model, obj, kind, pairs, actor, logs, system):
    """Notify the followers of updated records (not the one who updated them); a deleted record's
    comments and follows go with it. Changes no record."""
    comments.notify_followers(conn, obj, kind, pairs, actor, system)
    comments.forget(conn, obj, kind, pairs)
    return False
