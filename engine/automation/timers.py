"""Time-relative triggers: a timer row per (rule, record), armed on every write.

`field` + offset: due at the record's date (e.g. 3 days before expected_close_date).
`since_change` + after: due N after the field last changed. `since_related` + after:
due N after the last related record (e.g. activity) was created. The worker fires
due timers; the next relevant write re-arms them.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import timers
from metacrm.metamodel.model import Model, ObjectDef

BATCH = 500


def arm(conn: Connection, model: Model, obj: ObjectDef, before: Mapping[str, Any] | None,
        after: Mapping[str, Any], now: datetime) -> None:
    """Set or clear the timers of `obj`'s time rules for this record, and of parents watching it."""
    arm_many(conn, model, obj, [(before, after)], now)


def arm_many(conn: Connection, model: Model, obj: ObjectDef,
             pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any]]], now: datetime) -> None:
    """`arm` for a batch of written records of `obj`: a constant number of statements (one DELETE
    and one INSERT per BATCH timers), however many records and rules."""
    plan: dict[tuple[str, str, str], datetime | None] = {}  # the last write of a record wins
    for before, after in pairs:
        for rule, record_id, due in _wanted(model, obj, before, after, now):
            plan[(rule.object, rule.name, record_id)] = due
    _apply(conn, plan)


def _wanted(model: Model, obj: ObjectDef, before: Mapping[str, Any] | None, after: Mapping[str, Any],
            now: datetime):
    """(rule, record id, due time or None to clear) that this write asks for."""
    for rule in obj.automations:
        trigger = rule.trigger
        if not rule.active or not trigger.is_timed:
            continue
        if trigger.date_field:
            value = after.get(trigger.date_field)
            if before is None or before.get(trigger.date_field) != value:
                yield rule, after["id"], _as_datetime(value) + trigger.offset if value else None
        elif trigger.since_change:
            if before is None or before.get(trigger.since_change) != after.get(trigger.since_change):
                yield rule, after["id"], now + trigger.offset
        elif trigger.since_related and (before is None or (
                after.get("owner") is not None and before.get("owner") != after.get("owner"))):
            # a new record, or a new owner (e.g. claimed from a pool): the follow-up clock starts now
            yield rule, after["id"], now + trigger.offset
    if before is None:
        for parent in model.objects.values():
            for rule in parent.automations:
                related = rule.trigger.since_related
                if rule.active and related and related[0] == obj.name and after.get(related[1]):
                    yield rule, after[related[1]], now + rule.trigger.offset


def _apply(conn: Connection, plan: Mapping[tuple[str, str, str], datetime | None]) -> None:
    """Replace the timers in `plan`: the old row goes (with its attempts and lease), a new one is
    armed where a due time is given."""
    keys = list(plan)
    if not keys:  # most writes arm nothing: do not even build the statement
        return
    key = sa.tuple_(timers.c.object, timers.c.rule, timers.c.record_id)
    for start in range(0, len(keys), BATCH):
        chunk = keys[start:start + BATCH]
        conn.execute(sa.delete(timers).where(key.in_(chunk)))
        rows = [{"object": o, "rule": r, "record_id": i, "due_at": plan[(o, r, i)]}
                for o, r, i in chunk if plan[(o, r, i)] is not None]
        if rows:
            conn.execute(timers.insert(), rows)


def rearm(conn: Connection, timer: Mapping[str, Any], now: datetime) -> None:
    """Arm a timer that had become a dead letter again, due now, with fresh attempts —
    unless a write re-armed it meanwhile (that newer timer stands)."""
    key = (timers.c.object == timer["object"]) & (timers.c.rule == timer["rule"]) & \
        (timers.c.record_id == timer["record_id"])
    if conn.execute(sa.select(timers.c.due_at).where(key)).first() is None:
        conn.execute(timers.insert().values(object=timer["object"], rule=timer["rule"],
                                            record_id=timer["record_id"], due_at=now))


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=timezone.utc)
