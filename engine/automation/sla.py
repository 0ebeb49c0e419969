"""SLA policies: due times from targets, business hours and holidays, paused states,
warnings and breaches.

On every write of a record whose object has policies, the first policy whose condition
holds applies; each target keeps a clock (started, paused, due, status) and writes its
due time and status into the record's own fields, so lists, filters and reports see
them. Warning and breach moments are timers that the worker fires.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import sla_clocks, timers
from metacrm.engine.expressions import EvaluationError, Evaluator
from metacrm.engine.records.relations import related_values
from metacrm.metamodel.automation import CalendarDef, SLAPolicyDef, SLATargetDef
from metacrm.metamodel.model import Model, ObjectDef

TIMER_PREFIX = "sla:"


# -- business time ---------------------------------------------------------------------------


def add_business_time(start: datetime, duration: timedelta, calendar: CalendarDef | None) -> datetime:
    """`start` plus `duration` of working time (plain time without a calendar)."""
    if calendar is None:
        return start + duration
    zone = ZoneInfo(calendar.timezone)
    local = start.astimezone(zone)
    remaining = duration.total_seconds() / 60
    day = local.date()
    minute = local.hour * 60 + local.minute + local.second / 60
    for _ in range(3660):  # at most ten years of days
        if _working(day, calendar):
            begin = max(minute, calendar.start_minute)
            available = calendar.end_minute - begin
            if available > 0:
                if remaining <= available:
                    return _at(day, begin + remaining, zone)
                remaining -= available
        day, minute = day + timedelta(days=1), 0
    raise ValueError("the calendar has no working time")


def business_time_between(start: datetime, end: datetime, calendar: CalendarDef | None) -> timedelta:
    if end <= start:
        return timedelta(0)
    if calendar is None:
        return end - start
    zone = ZoneInfo(calendar.timezone)
    a, b = start.astimezone(zone), end.astimezone(zone)
    total, day = 0.0, a.date()
    while day <= b.date():
        if _working(day, calendar):
            low = calendar.start_minute if day != a.date() else max(calendar.start_minute, a.hour * 60 + a.minute)
            high = calendar.end_minute if day != b.date() else min(calendar.end_minute, b.hour * 60 + b.minute)
            total += max(0, high - low)
        day += timedelta(days=1)
    return timedelta(minutes=total)


def _working(day: date, calendar: CalendarDef) -> bool:
    return day.weekday() in calendar.days and day.isoformat() not in calendar.holidays


def _at(day: date, minute: float, zone: ZoneInfo) -> datetime:
    local = datetime.combine(day, time.min, tzinfo=zone) + timedelta(minutes=minute)
    return local.astimezone(timezone.utc)


# -- clocks ------------------------------------------------------------------------------------


def on_write(conn: Connection, model: Model, tables, obj: ObjectDef, record: Mapping[str, Any], now: datetime,
             evaluator: Evaluator) -> bool:
    """Start, re-target, pause, resume or stop each SLA clock of this record; returns whether
    the record's SLA fields were updated."""
    if not obj.sla_policies:
        return False
    names = {**record, **related_values(conn, model, tables, obj, record, {}, paths=_paths(obj))}
    policy = _policy(obj, names, evaluator)
    clocks = {r.target: r for r in conn.execute(sa.select(sla_clocks).where(
        sla_clocks.c.object == obj.name, sla_clocks.c.record_id == record["id"]))}
    if policy is None:
        return False
    values: dict[str, Any] = {}
    for target in policy.targets:
        clock = clocks.get(target.name)
        state = _advance(conn, obj, policy, target, clock, record, names, now, evaluator)
        values[target.due_field], values[target.status_field] = state["due_at"], state["status"]
    table = tables[obj.name]
    if any(record.get(k) != v for k, v in values.items()):
        conn.execute(sa.update(table).where(table.c.id == record["id"]).values(values))
        return True
    return False


def _advance(conn, obj, policy: SLAPolicyDef, target: SLATargetDef, clock, record, names, now, evaluator) -> dict:
    key = (sla_clocks.c.object == obj.name) & (sla_clocks.c.record_id == record["id"]) & \
        (sla_clocks.c.target == target.name)
    if clock is None or clock.policy != policy.name:
        started = clock.started_at if clock is not None else (record.get("created_at") or now)
        state = {"policy": policy.name, "started_at": started, "paused_at": None,
                 "due_at": add_business_time(started, target.within, policy.calendar), "status": "on_track"}
    else:
        state = {"policy": clock.policy, "started_at": clock.started_at, "paused_at": clock.paused_at,
                 "due_at": clock.due_at, "status": clock.status}
    finished = state["status"] in ("met", "breached")
    if not finished and _holds(target.met_when, names, evaluator):
        state["status"], state["paused_at"] = "met", None
    elif not finished:
        paused = policy.pause_when is not None and _holds(policy.pause_when, names, evaluator)
        if paused and state["paused_at"] is None:
            state["paused_at"], state["status"] = now, "paused"
        elif not paused and state["paused_at"] is not None:
            held = business_time_between(state["paused_at"], now, policy.calendar)
            state["due_at"] = add_business_time(state["due_at"], held, policy.calendar) if policy.calendar \
                else state["due_at"] + held
            state["paused_at"] = None
        if state["paused_at"] is None:
            state["status"] = _status(now, state["due_at"], policy)
    conn.execute(sa.delete(sla_clocks).where(key))
    conn.execute(sla_clocks.insert().values(object=obj.name, record_id=record["id"], target=target.name, **state))
    _arm(conn, obj, policy, target, record["id"], state)
    return state


def _status(now: datetime, due: datetime, policy: SLAPolicyDef) -> str:
    if now >= due:
        return "breached"
    if policy.warn_before is not None and now >= due - policy.warn_before:
        return "warning"
    return "on_track"


def _arm(conn, obj, policy: SLAPolicyDef, target: SLATargetDef, record_id: str, state: dict) -> None:
    for kind in ("warning", "breach"):
        name = f"{TIMER_PREFIX}{target.name}:{kind}"
        conn.execute(sa.delete(timers).where(timers.c.object == obj.name, timers.c.rule == name,
                                             timers.c.record_id == record_id))
    if state["status"] in ("met", "breached", "paused"):
        return
    if policy.warn_before is not None and state["status"] == "on_track":
        conn.execute(timers.insert().values(object=obj.name, rule=f"{TIMER_PREFIX}{target.name}:warning",
                                            record_id=record_id, due_at=state["due_at"] - policy.warn_before))
    conn.execute(timers.insert().values(object=obj.name, rule=f"{TIMER_PREFIX}{target.name}:breach",
                                        record_id=record_id, due_at=state["due_at"]))


def fire(conn: Connection, model: Model, tables, obj: ObjectDef, timer_name: str, record_id: str, now: datetime):
    """A warning or breach timer came due: update the status; return the actions to run (or ())."""
    target_name, kind = timer_name[len(TIMER_PREFIX):].rsplit(":", 1)
    clock = conn.execute(sa.select(sla_clocks).where(sla_clocks.c.object == obj.name,
                                                     sla_clocks.c.record_id == record_id,
                                                     sla_clocks.c.target == target_name)).first()
    policy = next((p for p in obj.sla_policies if clock is not None and p.name == clock.policy), None)
    if policy is None or clock.status in ("met", "breached", "paused"):
        return ()
    target = next(t for t in policy.targets if t.name == target_name)
    status = "breached" if kind == "breach" else "warning"
    conn.execute(sa.update(sla_clocks).where(sla_clocks.c.object == obj.name, sla_clocks.c.record_id == record_id,
                                             sla_clocks.c.target == target_name).values(status=status))
    table = tables[obj.name]
    conn.execute(sa.update(table).where(table.c.id == record_id).values({target.status_field: status}))
    return policy.on_breach if status == "breached" else policy.on_warning


def _policy(obj: ObjectDef, names, evaluator: Evaluator) -> SLAPolicyDef | None:
    for policy in obj.sla_policies:
        if policy.condition is None or _holds(policy.condition, names, evaluator):
            return policy
    return None


def _holds(expression, names, evaluator: Evaluator) -> bool:
    try:
        return evaluator.evaluate(expression, names) is True
    except EvaluationError:
        return False


def _paths(obj: ObjectDef) -> tuple:
    paths: set = set()
    for policy in obj.sla_policies:
        for expression in [policy.condition, policy.pause_when] + [t.met_when for t in policy.targets]:
            if expression is not None:
                paths |= set(expression.relation_paths)
    return tuple(sorted(paths))
