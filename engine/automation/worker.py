"""The worker: delivers the outbox, fires due timers and runs cron schedules.

Several workers may run at once (on PostgreSQL, on several machines): each claims
work in one statement (UPDATE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED
LIMIT n) RETURNING) and a lease, so no entry is taken twice
while its lease runs; a worker that dies mid-job leaves the lease to expire and the
entry is retried. Failed deliveries back off exponentially and become dead letters
after max_attempts. Each job stands alone: whatever one delivery or timer raises is
recorded on that job (retry with backoff, then a dead letter) and the rest of the batch
goes on. Time comes from an injectable clock.
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

from metacrm.engine.automation import delivery, sla
from metacrm.engine.automation import timers as timer_rules
from metacrm.engine.automation.event import Event
from metacrm.engine.automation.runner import Automation, write_log_entries
from metacrm.engine.automation.tables import outbox, schedules, timers
from metacrm.engine.errors import AutomationError
from metacrm.engine.errors import RecordError
from metacrm.engine.expressions.evaluator import Clock, Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import where_clause
from metacrm.engine.records.relations import fill_read_time
from metacrm.engine.records.service import RecordService

log = logging.getLogger("metacrm.worker")
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(hours=1)
TIMER_MAX_ATTEMPTS = 5


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
    mail: delivery.MailSettings | None = None  # default: the runtime's settings
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
    lease: timedelta = timedelta(minutes=5)
    batch: int = 20
    timer_max_attempts: int = TIMER_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if self.mail is None:
            self.mail = self.runtime.settings.mail
        self.records = RecordService(self.runtime)
        self.automation = Automation(self.runtime, self.records)
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
        """Claim up to `batch` due rows in one statement: an UPDATE setting our lease on the rows a
        subquery picks (locking them, skipping rows other workers hold, on PostgreSQL), returning them
        in `order` with `attempts` as it was before this claim."""
        now = self.clock.now()
        keys = list(table.primary_key.columns)
        picked = (sa.select(*keys).where(where(now))
                  .where(sa.or_(table.c.locked_until.is_(None), table.c.locked_until < now))
                  .order_by(*order).limit(self.batch).with_for_update(skip_locked=True))
        # a claim counts as an attempt: a job that kills its worker every time still runs out
        values = {"locked_until": now + self.lease, "attempts": table.c.attempts + 1}
        if table is outbox:
            values["locked_by"] = self.name
        claimed = keys[0].in_(picked) if len(keys) == 1 else sa.tuple_(*keys).in_(picked)
        returned = [c for c in table.c if c.name != "attempts"] + [(table.c.attempts - 1).label("attempts")]
        with self.runtime.db.begin() as conn:
            rows = conn.execute(sa.update(table).where(claimed).values(values).returning(*returned)).all()
        names = [column.name for column in order]
        return sorted(rows, key=lambda row: tuple(getattr(row, n) for n in names))

    def deliver_due(self) -> int:
        rows = self.claim(outbox, "next_attempt_at",
                          lambda now: sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
                          [outbox.c.next_attempt_at, outbox.c.id])
        for row in rows:
            try:
                self._deliver(row)
            except Exception:  # even recording the outcome failed (the database went away?): the lease retries it
                log.exception("outbox %s (%s): could not record the outcome", row.id, row.kind)
        return len(rows)

    def _deliver(self, row) -> None:
        now = self.clock.now()
        attempts = row.attempts + 1
        try:
            self._send(row, now)
        except delivery.DeliveryError as exc:
            self._failed(row, attempts, str(exc))
            return
        except Exception as exc:  # a bad payload, a bug: this entry fails, the batch goes on
            log.exception("outbox %s (%s) failed unexpectedly", row.id, row.kind)
            self._failed(row, attempts, describe(exc))
            return
        with self.runtime.db.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row.id, outbox.c.locked_by == self.name)
                         .values(status="done", done_at=now, locked_until=None, last_error=None))
        self.stats.delivered += 1

    def _send(self, row, now: datetime) -> None:
        if row.kind == "email":
            delivery.send_email(self.mail, row.delivery_id, row.payload)
        elif row.kind == "webhook":
            delivery.post_webhook(row.delivery_id, row.payload)
        elif row.kind == "notify":
            with self.runtime.db.begin() as conn:
                delivery.store_notifications(conn, row.id, row.payload, now)
        elif row.kind == "timer":  # a dead timer put back in the queue: arm it again, due now
            with self.runtime.db.begin() as conn:
                timer_rules.rearm(conn, row.payload, now)
        else:
            raise delivery.DeliveryError(f"unknown outbox kind {row.kind!r}")

    def _failed(self, row, attempts: int, error: str) -> None:
        now = self.clock.now()
        dead = attempts >= row.max_attempts
        with self.runtime.db.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
                status="dead" if dead else "pending", last_error=error, locked_until=None,
                next_attempt_at=now if dead else now + backoff(attempts)))
        self.stats.dead += dead
        self.stats.failed += 1
        log.warning("outbox %s (%s) attempt %s failed: %s%s", row.id, row.kind, attempts, error,
                    " — dead letter" if dead else "")

    # -- timers ----------------------------------------------------------------------------
    def fire_timers(self) -> int:
        rows = self.claim(timers, "due_at", lambda now: timers.c.due_at <= now, [timers.c.due_at])
        for row in rows:
            try:
                self._fire(row)
            except Exception:  # even recording the failure failed: the lease brings the timer back
                log.exception("timer %s.%s on %s: could not record the outcome", row.object, row.rule, row.record_id)
        return len(rows)

    def _fire(self, row) -> None:
        model = self.runtime.model
        rule = _rule(model, row.object, row.rule)
        try:
            with self.runtime.db.begin() as conn:
                if row.rule.startswith(sla.TIMER_PREFIX) and row.object in model:
                    self._fire_sla(conn, model, row)
                elif rule is not None:
                    self._run_on_record(conn, model, rule, row.record_id, "time")
                conn.execute(sa.delete(timers).where(_timer_key(row)))
        except Exception as exc:  # the rule's writes rolled back; retry later, or give up
            if not isinstance(exc, AutomationError):
                log.exception("timer %s.%s on %s failed", row.object, row.rule, row.record_id)
            self._timer_failed(row, exc)
            return
        self.stats.timers += 1

    def _timer_failed(self, row, exc: Exception) -> None:
        """Back off like an outbox entry; after `timer_max_attempts` the timer becomes a dead
        letter in the outbox (kind "timer"), where `metacrm outbox list` shows it and
        `metacrm outbox retry` arms it again."""
        now, attempts, error = self.clock.now(), row.attempts + 1, describe(exc)
        dead = attempts >= self.timer_max_attempts
        with self.runtime.db.begin() as conn:
            write_log_entries(conn, exc.entries if isinstance(exc, AutomationError) else [])
            if not dead:
                conn.execute(sa.update(timers).where(_timer_key(row))
                             .values(locked_until=now + backoff(attempts), last_error=error))
            elif conn.execute(sa.delete(timers).where(_timer_key(row))).rowcount:
                conn.execute(outbox.insert().values(
                    kind="timer", status="dead", attempts=attempts, max_attempts=self.timer_max_attempts,
                    payload={"object": row.object, "rule": row.rule, "record_id": row.record_id,
                             "due_at": row.due_at.isoformat()},
                    next_attempt_at=now, created_at=now, last_error=error, rule=f"{row.object}.{row.rule}",
                    record_id=row.record_id))
        self.stats.failed += 1
        self.stats.dead += dead
        log.warning("timer %s.%s on %s attempt %s failed: %s%s", row.object, row.rule, row.record_id, attempts,
                    error, " — dead letter" if dead else "")

    def _fire_sla(self, conn, model, row) -> None:
        obj = model.object(row.object)
        tables = self.runtime.tables(model)
        actions = sla.fire(conn, model, tables, obj, row.rule, row.record_id, self.clock.now())
        if actions:
            record = dict(conn.execute(sa.select(tables[obj.name]).where(tables[obj.name].c.id == row.record_id)).one()._mapping)
            actor = Actor(system=True, channel="automation", clock=self.clock)
            fill_read_time(conn, model, tables, obj, [record], Evaluator(self.clock))
            self.automation.run_actions(conn, model, Event("sla", obj, record, record, actor), actions,
                                                f"{obj.name}.{row.rule}")

    def _run_on_record(self, conn, model, rule, record_id: str, kind: str) -> bool:
        obj = model.object(rule.object)
        table = self.runtime.tables(model)[obj.name]
        row = conn.execute(sa.select(table).where(table.c.id == record_id)).first()
        if row is None:
            return False
        record = dict(row._mapping)
        fill_read_time(conn, model, self.runtime.tables(model), obj, [record], Evaluator(self.clock))
        actor = Actor(system=True, channel="automation", clock=self.clock)
        return self.automation.run_rule(conn, model, rule, Event(kind, obj, record, record, actor))

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
                except Exception:  # one record's failure does not stop the run for the others
                    log.exception("schedule %s on %s failed", rule.key, record_id)
            last = ids[-1]
        self.stats.schedules += 1


def _rule(model, object_name: str, rule_name: str):
    return model.find(object_name, "automations", rule_name)


def _timer_key(row):
    """This timer as claimed: a write that re-armed it since (a new due time) is another timer."""
    return (timers.c.object == row.object) & (timers.c.rule == row.rule) & \
        (timers.c.record_id == row.record_id) & (timers.c.due_at == row.due_at)


def backoff(attempts: int) -> timedelta:
    """10 s after the first failure, doubling, at most an hour."""
    return min(BACKOFF_BASE * (2 ** min(attempts - 1, 16)), BACKOFF_CAP)


def describe(exc: Exception) -> str:
    """A one-line account of an error for `last_error` (a database error without its SQL)."""
    if isinstance(exc, sa.exc.DBAPIError):
        first = str(exc.orig).strip().splitlines()
        return f"database: {first[0] if first else type(exc.orig).__name__}"
    if isinstance(exc, AutomationError) and isinstance(exc.__cause__, Exception):
        return describe(exc.__cause__) if isinstance(exc.__cause__, sa.exc.DBAPIError) \
            else str(exc.__cause__)  # the rule is named beside it already
    return str(exc) if isinstance(exc, (AutomationError, delivery.DeliveryError)) else f"{type(exc).__name__}: {exc}"


def retry_dead(runtime, ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Put dead letters back in the queue (all, or the given ids); returns how many."""
    now = now or Clock().now()
    with runtime.db.begin() as conn:
        query = sa.update(outbox).where(outbox.c.status == "dead")
        if ids:
            query = query.where(outbox.c.id.in_(ids))
        return conn.execute(query.values(status="pending", attempts=0, next_attempt_at=now, locked_until=None)).rowcount
