"""The worker's failures stay with the job that failed: an unexpected error in one delivery or
timer does not hold up the rest of the batch, and a timer that keeps failing becomes a dead
letter instead of being retried forever. Real SMTP and HTTP receivers, SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from metacrm.engine.automation import outbox as outbox_queue
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import execution_log, outbox, timers
from metacrm.engine.automation.worker import Worker, retry_dead
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.conftest import install
from tests.receivers import SMTPServer, WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: stage, type: picklist, options: [open, won], default: open}
  - {name: divisor, type: integer}
  - {name: score, type: integer}
automations:
  - name: went_quiet
    trigger: {on: time, since_change: stage, after: 1d}
    actions: [{set: {score: "100 / divisor"}}]
"""

TICKET = """
name: ticket
fields:
  - {name: subject, type: text, required: true}
  - {name: divisor, type: integer}
  - {name: score, type: integer}
  - {name: responded_at, type: datetime}
  - {name: response_due, type: datetime}
  - {name: response_sla, type: picklist, options: [on_track, warning, breached, met, paused]}
sla_policies:
  - name: standard
    targets:
      - {name: response, within: 1h, met_when: "not is_blank(responded_at)", due_field: response_due,
         status_field: response_sla}
    on_breach: [{set: {score: "100 / divisor"}}]
"""


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


def rows(runtime, table, *order):
    with runtime.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*order))]


def mail_worker(runtime, clock, smtp) -> Worker:
    return Worker(runtime, clock=clock, mail=MailSettings("127.0.0.1", smtp.port, "crm@example.com", timeout=5))


def test_an_unexpected_error_in_one_delivery_does_not_hold_up_the_others(runtime):
    clock = Clock(START)
    with SMTPServer() as smtp, WebhookReceiver() as hook:
        with runtime.db.begin() as conn:  # the first entry cannot even be made into an email
            bad = outbox_queue.enqueue(conn, "email", {"to": ["a@example.com"], "subject": "Hi\nBcc: x@example.com",
                                                       "body": "never sent"}, clock.now())
            outbox_queue.enqueue(conn, "email", {"to": ["b@example.com"], "subject": "Fine", "body": "sent"},
                                 clock.now())
            outbox_queue.enqueue(conn, "webhook", {"url": hook.url, "timeout": 5, "body": {"n": 1}}, clock.now())
        worker = mail_worker(runtime, clock, smtp)
        assert worker.run_once() == 3
        assert [m["Subject"] for m in smtp.messages] == ["Fine"] and len(hook.received) == 1
        entries = {r["id"]: r for r in rows(runtime, outbox, outbox.c.id)}
        failed = entries.pop(bad)
        assert (failed["status"], failed["attempts"], failed["locked_until"]) == ("pending", 1, None)
        assert failed["last_error"].startswith("ValueError: ") and "linefeed" in failed["last_error"]
        assert failed["next_attempt_at"] == clock.now() + timedelta(seconds=10)
        assert {r["status"] for r in entries.values()} == {"done"}
        for _ in range(4):  # it keeps failing: a dead letter after max_attempts, like any failed delivery
            clock.advance(hours=1)
            worker.run_once()
        (dead,) = [r for r in rows(runtime, outbox, outbox.c.id) if r["id"] == bad]
        assert (dead["status"], dead["attempts"]) == ("dead", 5)
        assert [m["Subject"] for m in smtp.messages] == ["Fine"]


def test_a_failing_sla_timer_does_not_stop_the_other_timers(runtime, records):
    clock = Clock(START)
    install(runtime, TICKET)
    actor = Actor(clock=clock)
    broken = records.create("ticket", {"subject": "Broken", "divisor": 0}, actor=actor)
    fine = records.create("ticket", {"subject": "Fine", "divisor": 4}, actor=actor)
    worker = Worker(runtime, clock=clock)
    clock.advance(hours=1, minutes=1)
    assert worker.run_once() == 2
    got = records.get("ticket", fine["id"], actor=SYSTEM)
    assert (got["response_sla"], got["score"]) == ("breached", 25)
    still = records.get("ticket", broken["id"], actor=SYSTEM)
    assert (still["response_sla"], still["score"]) == ("on_track", None)  # its firing rolled back
    (timer,) = rows(runtime, timers)
    assert (timer["record_id"], timer["attempts"]) == (broken["id"], 1)
    assert "division by zero" in timer["last_error"]
    assert timer["locked_until"] == clock.now() + timedelta(seconds=10)  # backing off
    assert worker.run_once() == 0


def test_a_timer_that_keeps_failing_becomes_a_dead_letter_and_can_be_retried(runtime, records, db_url):
    clock = Clock(START)
    install(runtime, DEAL)
    actor = Actor(clock=clock)
    deal = records.create("deal", {"name": "Acme", "divisor": 0}, actor=actor)
    other = records.create("deal", {"name": "Beta", "divisor": 5}, actor=actor)
    worker = Worker(runtime, clock=clock)
    clock.advance(days=1)
    worker.run_once()
    assert records.get("deal", other["id"], actor=SYSTEM)["score"] == 20
    for attempt in range(2, 6):
        (timer,) = rows(runtime, timers)
        assert timer["attempts"] == attempt - 1 and "division by zero" in timer["last_error"]
        clock.advance(hours=1)
        worker.run_once()
    assert rows(runtime, timers) == []  # no longer retried ...
    (dead,) = rows(runtime, outbox)  # ... but kept, with what went wrong
    assert (dead["kind"], dead["status"], dead["attempts"], dead["rule"]) == ("timer", "dead", 5, "deal.went_quiet")
    assert dead["record_id"] == deal["id"] and "division by zero" in dead["last_error"]
    failures = [r for r in rows(runtime, execution_log, execution_log.c.id) if r["result"] == "failed"]
    assert len(failures) == 5 and {r["record_id"] for r in failures} == {deal["id"]}
    clock.advance(days=30)
    assert worker.run_once() == 0

    listed = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "outbox", "list"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert listed.returncode == 0, listed.stderr
    (line,) = [x for x in listed.stdout.splitlines() if "deal.went_quiet" in x]
    assert "timer" in line and "dead" in line and "division by zero" in line

    records.update("deal", deal["id"], {"divisor": 2}, actor=actor)  # the cause is fixed: queue it again
    assert retry_dead(runtime, now=clock.now()) == 1
    worker.run_once()
    assert records.get("deal", deal["id"], actor=SYSTEM)["score"] == 50
    assert [r["status"] for r in rows(runtime, outbox)] == ["done"] and rows(runtime, timers) == []
