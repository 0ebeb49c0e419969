"""The worker: delivers the outbox, fires due timers and runs cron schedules.

Several workers may run at once (on PostgreSQL, on several machines): each claims
work with SELECT ... FOR UPDATE SKIP LOCKED and a lease, so no entry is taken twice
while its lease runs; a worker that dies mid-job leaves the lease to expire and the
entry is retried. Failed deliveries back off exponentially and become dead letters
after max_attempts. Time comes from an injectable clock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from croniter import croniter

from engine.automation import delivery, sla
from engine.automation.runner import AutomationError, Event, write_log_entries
from engine.automation.tables import outbox, schedules, timers
from engine.expressions.evaluator import Clock, Evaluator
from engine.records import readtime
from engine.records.context import Actor
from engine.records.errors import RecordError
from engine.records.query import where_clause
from engine.records.service import RecordService

log = logging.getLogger("metacrm.worker")
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(hours=1)


@dataclass
class WorkerStats:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    timers: int = 0
    schedules: int = 0


@dataclass
class Worker:
    runtime: Any
    clock: Clock = field(default_factory=Clock)
    mail: delivery.MailSettings = field(default_factory=delivery.MailSettings.from_env)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
    lease: timedelta = timedelta(minutes=5)
    batch: int = 20

    def __post_init__(self) -> None:
        self.records = RecordService(self.runtime)
        self.stats = WorkerStats()

    # -- loop ------------------------------------------------------------------------------
    def run_once(self) -> int:
        """One pass over due work; returns how many items were handled."""
        self.runtime.ensure_current()
        handled = self.deliver_due() + self.fire_timers() + self.run_schedules()
        self.runtime.automation_log.flush()
        return handled

    def run_forever(self, poll: float = 1.0, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # keep serving; the failing item is retried by lease
                log.exception("worker pass failed")
                busy = 0
            if not busy:
                stop.wait(poll)

    # -- outbox ----------------------------------------------------------------------------
    def claim(self, table: sa.Table, due_column: str, where, order) -> list[Any]:
        """Claim up to `batch` due rows: lock them (skipping rows others hold), set our lease, commit."""
        now = self.clock.now()
        with self.runtime.db.begin() as conn:
            query = (sa.select(table).where(where(now))
                     .where(sa.or_(table.c.locked_until.is_(None), table.c.locked_until < now))
                     .order_by(*order).limit(self.batch).with_for_update(skip_locked=True))
            rows = conn.execute(query).all()
            if not rows:
                return []
            keys = [k for k in table.primary_key.columns]
            for row in rows:
                match = sa.and_(*(k == getattr(row, k.name) for k in keys))
                values = {"locked_until": now + self.lease}
                if table is outbox:
                    values.update(locked_by=self.name, attempts=table.c.attempts + 1)
                conn.execute(sa.update(table).where(match).values(values))
        return rows

    def deliver_due(self) -> int:
        rows = self.claim(outbox, "next_attempt_at",
                          lambda now: sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
                          [outbox.c.next_attempt_at, outbox.c.id])
        for row in rows:
            self._deliver(row)
        return len(rows)

    def _deliver(self, row) -> None:
        now = self.clock.now()
        attempts = row.attempts + 1
        try:
            if row.kind == "email":
                delivery.send_email(self.mail, row.id, row.payload)
            elif row.kind == "webhook":
                delivery.post_webhook(row.id, row.payload)
            elif row.kind == "notify":
                with self.runtime.db.begin() as conn:
                    delivery.store_notifications(conn, row.id, row.payload, now)
            else:
                raise delivery.DeliveryError(f"unknown outbox kind {row.kind!r}")
        except delivery.DeliveryError as exc:
            self._failed(row, attempts, str(exc))
            return
        with self.runtime.db.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row.id, outbox.c.locked_by == self.name)
                         .values(status="done", done_at=now, locked_until=None, last_error=None))
        self.stats.delivered += 1

    def _failed(self, row, attempts: int, error: str) -> None:
        now = self.clock.now()
        dead = attempts >= row.max_attempts
        delay = min(BACKOFF_BASE * (2 ** (attempts - 1)), BACKOFF_CAP)
        with self.runtime.db.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
                status="dead" if dead else "pending", last_error=error, locked_until=None,
                next_attempt_at=now if dead else now + delay))
        self.stats.dead += dead
        self.stats.failed += 1
        log.warning("outbox %s (%s) attempt %s failed: %s%s", row.id, row.kind, attempts, error,
                    " — dead letter" if dead else "")

    # -- timers ----------------------------------------------------------------------------
    def fire_timers(self) -> int:
        rows = self.claim(timers, "due_at", lambda now: timers.c.due_at <= now, [timers.c.due_at])
        for row in rows:
            self._fire(row)
        return len(rows)

    def _fire(self, row) -> None:
        model = self.runtime.model
        key = (timers.c.object == row.object) & (timers.c.rule == row.rule) & (timers.c.record_id == row.record_id)
        rule = _rule(model, row.object, row.rule)
        try:
            with self.runtime.db.begin() as conn:
                if row.rule.startswith(sla.TIMER_PREFIX) and row.object in model:
                    self._fire_sla(conn, model, row)
                elif rule is not None:
                    self._run_on_record(conn, model, rule, row.record_id, "time")
                conn.execute(sa.delete(timers).where(key, timers.c.due_at == row.due_at))
        except AutomationError as exc:
            with self.runtime.db.begin() as conn:
                write_log_entries(conn, exc.entries)
                conn.execute(sa.delete(timers).where(key, timers.c.due_at == row.due_at))
        self.stats.timers += 1

    def _fire_sla(self, conn, model, row) -> None:
        obj = model.object(row.object)
        tables = self.runtime.tables(model)
        actions = sla.fire(conn, model, tables, obj, row.rule, row.record_id, self.clock.now())
        if actions:
            record = dict(conn.execute(sa.select(tables[obj.name]).where(tables[obj.name].c.id == row.record_id)).one()._mapping)
            actor = Actor(system=True, channel="automation", clock=self.clock)
            readtime.fill(conn, model, tables, obj, [record], Evaluator(self.clock))
            self.records.automation.run_actions(conn, model, Event("sla", obj, record, record, actor), actions,
                                                f"{obj.name}.{row.rule}")

    def _run_on_record(self, conn, model, rule, record_id: str, kind: str) -> bool:
        obj = model.object(rule.object)
        table = self.runtime.tables(model)[obj.name]
        row = conn.execute(sa.select(table).where(table.c.id == record_id)).first()
        if row is None:
            return False
        record = dict(row._mapping)
        readtime.fill(conn, model, self.runtime.tables(model), obj, [record], Evaluator(self.clock))
        actor = Actor(system=True, channel="automation", clock=self.clock)
        return self.records.automation.run_rule(conn, model, rule, Event(kind, obj, record, record, actor))

    # -- schedules -------------------------------------------------------------------------
    def run_schedules(self) -> int:
        model, now, ran = self.runtime.model, self.clock.now(), 0
        for obj in model.objects.values():
            for rule in obj.automations:
                if rule.active and rule.trigger.on == "schedule" and self._claim_schedule(rule, now):
                    self._run_schedule(model, rule)
                    ran += 1
        return ran

    def _claim_schedule(self, rule, now: datetime) -> bool:
        """Take this run of the schedule: only the worker that moves next_run_at on runs it."""
        key = (schedules.c.object == rule.object) & (schedules.c.rule == rule.name)
        with self.runtime.db.begin() as conn:
            current = conn.execute(sa.select(schedules.c.next_run_at).where(key)).scalar()
            if current is None:
                conn.execute(schedules.insert().values(object=rule.object, rule=rule.name,
                                                       next_run_at=croniter(rule.trigger.cron, now).get_next(datetime)))
                return False
            if current > now:
                return False
            following = croniter(rule.trigger.cron, now).get_next(datetime)
            moved = conn.execute(sa.update(schedules).where(key, schedules.c.next_run_at == current)
                                 .values(next_run_at=following, last_run_at=now)).rowcount
            return moved == 1

    def _run_schedule(self, model, rule) -> None:
        """Run the rule on every record its filter selects, one transaction per record, in keyset batches."""
        obj = model.object(rule.object)
        table = self.runtime.tables(model)[obj.name]
        clause = where_clause(obj, table, rule.trigger.filter, self.clock)
        last = None
        while True:
            query = sa.select(table.c.id).order_by(table.c.id).limit(500)
            if clause is not None:
                query = query.where(clause)
            if last is not None:
                query = query.where(table.c.id > last)
            with self.runtime.db.engine.connect() as conn:
                ids = list(conn.execute(query).scalars())
            if not ids:
                break
            for record_id in ids:
                try:
                    with self.runtime.db.begin() as conn:
                        self._run_on_record(conn, model, rule, record_id, "schedule")
                except AutomationError as exc:
                    with self.runtime.db.begin() as conn:
                        write_log_entries(conn, exc.entries)
                except RecordError as exc:
                    log.warning("schedule %s on %s: %s", rule.key, record_id, exc)
            last = ids[-1]
        self.stats.schedules += 1


def _rule(model, object_name: str, rule_name: str):
    return model.find(object_name, "automations", rule_name)


def retry_dead(runtime, ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Put dead letters back in the queue (all, or the given ids); returns how many."""
    now = now or Clock().now()
    with runtime.db.begin() as conn:
        query = sa.update(outbox).where(outbox.c.status == "dead")
        if ids:
            query = query.where(outbox.c.id.in_(ids))
        return conn.execute(query.values(status="pending", attempts=0, next_attempt_at=now, locked_until=None)).rowcount
