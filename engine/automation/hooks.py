"""The built-in automation as a plugin of the record engine.

The record engine announces its writes through the lifecycle hooks of
engine/plugins/hookspecs.py and knows nothing of automation; `Runtime` registers this
module on its plugin manager (as `metacrm.automation`), the way any plugin registers. So
rules, state machines, timers, SLAs, approval locks, pool visibility and the execution log
reach the write path through the same interface a third-party plugin would use.
"""

from __future__ import annotations

import sqlalchemy as sa

from metacrm.engine.automation import approvals, pools
from metacrm.engine.automation.event import Event
from metacrm.engine.automation.runner import Automation, write_log_entries
from metacrm.engine.automation.tables import pool_entries
from metacrm.engine.errors import AutomationError
from metacrm.engine.plugins import hookimpl

#: The name this plugin is registered under on each runtime's manager.
NAME = "metacrm.automation"


@hookimpl
def metacrm_before_save(service, conn, model, kind, obj, before, record, actor):
    """Field-only rules run before the write, changing `record` in place."""
    return Automation(service.runtime, service).before_save(conn, model, kind, obj, before, record, actor)


@hookimpl
def metacrm_after_write(service, conn, model, obj, kind, pairs, actor, logs, system):
    """Timers armed for the whole batch at once, then each record's rules and state-machine actions."""
    automation = Automation(service.runtime, service)
    events = [Event(kind, obj, before, after, actor, list(logs[index]) if logs else [], system=system)
              for index, (before, after) in enumerate(pairs)]
    automation.arm_timers(conn, model, events)
    changed = False
    for event in events:
        changed = automation.after_write(conn, model, event, armed=True) or changed
    return changed


@hookimpl
def metacrm_write_locks(conn, obj, ids, actor):
    """Records waiting for an approval that locks them."""
    return approvals.locks(conn, obj, ids, actor)


@hookimpl
def metacrm_write_ended(runtime, error):
    """A failed rule's log lines are written at once, in a transaction of their own (the write
    was rolled back with the lines it buffered); otherwise the buffer is flushed when due."""
    if isinstance(error, AutomationError):
        with runtime.db.begin() as conn:
            write_log_entries(conn, error.entries)
        return
    runtime.automation_log.maybe_flush()


@hookimpl
def metacrm_read_grants(conn, obj, actor, table):
    """Members of an object's pools may read the records in those pools."""
    member_of = [p.name for p in obj.pools if pools.is_member(conn, p, actor.user_id)]
    if not member_of:
        return None
    return table.c.id.in_(sa.select(pool_entries.c.record_id).where(
        pool_entries.c.object == obj.name, pool_entries.c.pool.in_(member_of)))
