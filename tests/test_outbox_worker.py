"""The outbox and the worker on SQLite and PostgreSQL: real SMTP, real HTTP, retries, dead letters,
time-relative rules and schedules with an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import notifications, outbox
from metacrm.engine.automation.worker import Worker, retry_dead
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.conftest import install
from tests.receivers import SMTPServer, WebhookReceiver

START = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: stage, type: picklist, options: [open, won, lost], default: open}
  - {name: amount, type: currency}
  - {name: contact_email, type: email}
  - {name: close_date, type: date}
  - {name: reminded, type: boolean, default: false}
  - {name: stale, type: boolean, default: false}
  - {name: pinged, type: integer, default: 0}
automations:
  - name: won_mail
    trigger: {on: changed, fields: [stage], to: [won]}
    actions:
      - email: {to: [owner, "field:contact_email"], subject: "Won: {{ record.name }}",
                body: "Congratulations, {{ record.name }} closed at {{ record.amount }}."}
      - notify: {to: [owner, "role:director"], message: "{{ record.name }} was won"}
  - name: big_deal_hook
    trigger: {on: created}
    condition: "amount >= 1000"
    actions:
      - webhook: {url: "URL", secret_env: METACRM_TEST_HOOK_SECRET, timeout: 2, max_attempts: 3}
  - name: close_reminder
    trigger: {on: time, field: close_date, offset: -3d}
    condition: "stage == 'open'"
    actions: [{set: {reminded: "true"}}]
  - name: went_quiet
    trigger: {on: time, since_change: stage, after: 7d}
    condition: "stage == 'open'"
    actions: [{set: {stale: "true"}}]
  - name: nightly
    trigger: {on: schedule, cron: "0 2 * * *", filter: [[stage, eq, open]]}
    actions: [{set: {pinged: "pinged + 1"}}]
"""


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("METACRM_TEST_HOOK_SECRET", "s3cret")
    with WebhookReceiver(secret="s3cret") as receiver:
        yield receiver


@pytest.fixture
def deals(runtime, hook):
    install(runtime, DEAL.replace("URL", hook.url))
    with runtime.db.begin() as conn:
        owner = identity.create_user(conn, "Olivia", "olivia@example.com")
        director = identity.create_user(conn, "Dan", "dan@example.com", roles=["director"])
    return runtime, owner, director


def worker(runtime, clock, smtp=None) -> Worker:
    mail = MailSettings("127.0.0.1", smtp.port if smtp else 1, "crm@example.com", timeout=5)
    return Worker(runtime, clock=clock, mail=mail)


def outbox_rows(runtime):
    with runtime.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]


def test_email_and_notifications_are_delivered_after_commit(deals, records, clock):
    runtime, owner, director = deals
    actor = Actor(user_id=owner.id, clock=clock)
    deal = records.create("deal", {"name": "Acme", "amount": 500, "contact_email": "buyer@acme.test"}, actor=actor)
    records.update("deal", deal["id"], {"stage": "won"}, actor=actor)
    assert [r["kind"] for r in outbox_rows(runtime)] == ["email", "notify"]
    with SMTPServer() as smtp:
        w = worker(runtime, clock, smtp)
        assert w.run_once() >= 2
        (message,) = smtp.messages
    assert message["Subject"] == "Won: Acme"
    assert sorted(message["To"].split(", ")) == ["buyer@acme.test", "olivia@example.com"]
    assert message["Message-ID"] == f"<{outbox_rows(runtime)[0]['delivery_id']}@example.com>"
    assert "closed at 500.00" in message.get_payload()
    with runtime.db.engine.connect() as conn:
        got = {r.user_id: r.message for r in conn.execute(sa.select(notifications))}
    assert got == {owner.id: "Acme was won", director.id: "Acme was won"}
    assert {r["status"] for r in outbox_rows(runtime)} == {"done"}
    assert w.run_once() == 0  # nothing is delivered twice


def test_rolled_back_write_sends_nothing(deals, records, clock):
    runtime, owner, _ = deals
    deal = records.create("deal", {"name": "Acme", "amount": 5}, actor=Actor(clock=clock))
    with pytest.raises(Exception):
        with runtime.db.begin() as conn:
            records.update("deal", deal["id"], {"stage": "won"}, actor=Actor(clock=clock), conn=conn)
            raise RuntimeError("the caller's transaction fails later")
    assert outbox_rows(runtime) == []


def test_signed_webhook_retries_while_receiver_is_down_then_delivers_once(deals, records, clock, hook):
    runtime, _, _ = deals
    hook.stop()
    deal = records.create("deal", {"name": "Big", "amount": 5000}, actor=Actor(clock=clock))
    w = worker(runtime, clock)
    w.run_once()
    (row,) = outbox_rows(runtime)
    assert (row["status"], row["attempts"]) == ("pending", 1) and "Connection refused" in row["last_error"]
    assert row["next_attempt_at"] == clock.now() + timedelta(seconds=10)
    assert w.run_once() == 0  # backing off: not due yet
    hook.start()
    hook.fail_next = 1  # up, but answers 503 once
    clock.advance(seconds=10)
    w.run_once()
    assert outbox_rows(runtime)[0]["next_attempt_at"] == clock.now() + timedelta(seconds=20)  # exponential
    clock.advance(seconds=20)
    w.run_once()
    (received,) = hook.received
    assert received["valid_signature"] and received["delivery"] == row["delivery_id"]
    assert received["body"]["record"]["id"] == deal["id"] and received["body"]["rule"] == "deal.big_deal_hook"
    assert outbox_rows(runtime)[0]["status"] == "done"


def test_receiver_down_for_good_becomes_a_dead_letter_and_can_be_retried(deals, records, clock, hook):
    runtime, _, _ = deals
    hook.stop()
    records.create("deal", {"name": "Big", "amount": 5000}, actor=Actor(clock=clock))
    w = worker(runtime, clock)
    for _ in range(3):
        w.run_once()
        clock.advance(hours=1)
    (row,) = outbox_rows(runtime)
    assert (row["status"], row["attempts"]) == ("dead", 3)
    assert w.run_once() == 0
    hook.start()
    assert retry_dead(runtime, now=clock.now()) == 1
    w.run_once()
    assert outbox_rows(runtime)[0]["status"] == "done" and len(hook.received) == 1


def test_time_relative_rules_fire_on_the_injected_clock(deals, records, clock):
    runtime, _, _ = deals
    actor = Actor(clock=clock)
    soon = records.create("deal", {"name": "Soon", "close_date": str((START + timedelta(days=5)).date())}, actor=actor)
    later = records.create("deal", {"name": "Later", "close_date": str((START + timedelta(days=30)).date())}, actor=actor)
    w = worker(runtime, clock)
    w.run_once()
    assert not records.get("deal", soon["id"], actor=SYSTEM)["reminded"]
    clock.advance(days=2)  # now 3 days before Soon closes
    w.run_once()
    assert records.get("deal", soon["id"], actor=SYSTEM)["reminded"] and not records.get("deal", later["id"], actor=SYSTEM)["reminded"]
    # moving the date re-arms the timer
    records.update("deal", later["id"], {"close_date": str((clock.now() + timedelta(days=1)).date())}, actor=actor)
    w.run_once()
    assert records.get("deal", later["id"], actor=SYSTEM)["reminded"]


def test_since_change_rule_restarts_when_the_field_changes(deals, records, clock):
    runtime, _, _ = deals
    actor = Actor(clock=clock)
    quiet = records.create("deal", {"name": "Quiet"}, actor=actor)
    moving = records.create("deal", {"name": "Moving"}, actor=actor)
    w = worker(runtime, clock)
    clock.advance(days=4)
    records.update("deal", moving["id"], {"stage": "lost"}, actor=Actor(clock=clock))
    records.update("deal", moving["id"], {"stage": "open"}, actor=Actor(clock=clock))
    clock.advance(days=3, minutes=1)
    w.run_once()
    assert records.get("deal", quiet["id"], actor=SYSTEM)["stale"] and not records.get("deal", moving["id"], actor=SYSTEM)["stale"]
    clock.advance(days=4)
    w.run_once()
    assert records.get("deal", moving["id"], actor=SYSTEM)["stale"]


def test_cron_schedule_runs_once_per_slot(deals, records, clock):
    runtime, _, _ = deals
    actor = Actor(clock=clock)
    records.create("deal", {"name": "Open"}, actor=actor)
    records.create("deal", {"name": "Won", "stage": "won"}, actor=actor)
    w1, w2 = worker(runtime, clock), worker(runtime, clock)
    w1.run_once()  # registers the schedule: next run tomorrow 02:00
    clock.advance(hours=17, minutes=1)  # 02:01 next day
    w1.run_once()
    w2.run_once()
    pinged = {r["name"]: r["pinged"] for r in records.list("deal", actor=SYSTEM).records}
    assert pinged == {"Open": 1, "Won": 0}
    clock.advance(days=1)
    w2.run_once()
    assert {r["name"]: r["pinged"] for r in records.list("deal", actor=SYSTEM).records}["Open"] == 2
