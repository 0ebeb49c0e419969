"""Approval processes and SLA policies on SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from metacrm.engine import identity
from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.automation.sla import add_business_time, business_time_between
from metacrm.engine.automation.worker import Worker
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.metamodel.automation import CalendarDef
from tests.conftest import install

QUOTE = """
name: quote
fields:
  - {name: name, type: text, required: true}
  - {name: discount, type: percent}
  - {name: amount, type: currency}
  - {name: status, type: picklist, options: [draft, approved, rejected], default: draft}
approval_processes:
  - name: discount
    entry_condition: "discount > 10"
    steps:
      - {name: manager, approvers: [manager]}
      - {name: finance, approvers: ["role:finance"], mode: all, condition: "amount > 10000"}
    on_approve: [{set: {status: "'approved'"}}]
    on_reject: [{set: {status: "'rejected'"}}]
"""

SLA_STATUS = "[on_track, warning, breached, met, paused]"
TICKET = f"""
name: customer
fields:
  - {{name: name, type: text, required: true}}
  - {{name: grade, type: picklist, options: [A, B]}}
---
name: ticket
fields:
  - {{name: subject, type: text, required: true}}
  - {{name: customer, type: lookup, target: customer}}
  - {{name: status, type: picklist, options: [new, open, waiting, resolved], default: new}}
  - {{name: priority, type: picklist, options: [normal, high], default: normal}}
  - {{name: responded_at, type: datetime}}
  - {{name: response_due, type: datetime}}
  - {{name: response_sla, type: picklist, options: {SLA_STATUS}}}
  - {{name: resolution_due, type: datetime}}
  - {{name: resolution_sla, type: picklist, options: {SLA_STATUS}}}
sla_policies:
  - name: grade_a
    condition: "customer.grade == 'A'"
    targets:
      - {{name: response, within: 1h, met_when: "not is_blank(responded_at)", due_field: response_due, status_field: response_sla}}
      - {{name: resolution, within: 24h, met_when: "status == 'resolved'", due_field: resolution_due, status_field: resolution_sla}}
    pause_when: "status == 'waiting'"
    warn_before: 15m
    on_breach: [{{set: {{priority: "'high'"}}}}]
  - name: standard
    targets:
      - {{name: response, within: 4h, met_when: "not is_blank(responded_at)", due_field: response_due, status_field: response_sla}}
      - {{name: resolution, within: 72h, met_when: "status == 'resolved'", due_field: resolution_due, status_field: resolution_sla}}
    calendar: {{timezone: Asia/Shanghai, days: [mon, tue, wed, thu, fri], hours: ["09:00", "18:00"], holidays: [2026-12-25]}}
"""

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shanghai


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def people(runtime):
    with runtime.db.begin() as conn:
        boss = identity.create_user(conn, "Boss", "boss@example.com")
        rep = identity.create_user(conn, "Rep", "rep@example.com", manager=boss.id)
        f1 = identity.create_user(conn, "F1", "f1@example.com", roles=["finance"])
        f2 = identity.create_user(conn, "F2", "f2@example.com", roles=["finance"])
    return {"boss": boss.id, "rep": rep.id, "f1": f1.id, "f2": f2.id}


def as_(user_id):
    return Actor(user_id=user_id)


def test_approval_steps_lock_history_and_actions(runtime, records, people):
    install(runtime, QUOTE)
    approvals = Approvals(records)
    small = records.create("quote", {"name": "Small", "discount": 5}, actor=as_(people["rep"]))
    with pytest.raises(ValidationFailed) as info:
        approvals.submit("quote", small["id"], "discount", as_(people["rep"]))
    assert info.value.errors[0].code == "entry_condition"
    quote = records.create("quote", {"name": "Big", "discount": 20, "amount": 50000}, actor=as_(people["rep"]))
    request = approvals.submit("quote", quote["id"], "discount", as_(people["rep"]), "please")
    with pytest.raises(ValidationFailed) as info:  # locked while pending
        records.update("quote", quote["id"], {"discount": 50}, actor=as_(people["rep"]))
    assert info.value.errors[0].code == "locked"
    with pytest.raises(ValidationFailed) as info:
        approvals.approve(request, as_(people["f1"]))
    assert info.value.errors[0].code == "not_an_approver"
    assert approvals.approve(request, as_(people["boss"]), "ok") == "pending"  # on to finance, all must approve
    assert approvals.approve(request, as_(people["f1"])) == "pending"
    assert approvals.approve(request, as_(people["f2"])) == "approved"
    assert records.get("quote", quote["id"], actor=SYSTEM)["status"] == "approved"
    records.update("quote", quote["id"], {"discount": 15}, actor=as_(people["rep"]))  # unlocked again
    decisions = [(h["step"], h["decision"], h["comment"]) for h in approvals.history("quote", quote["id"])]
    assert decisions == [(None, "submitted", "please"), ("manager", "approved", "ok"),
                         ("finance", "approved", None), ("finance", "approved", None)]


def test_approval_reject_recall_and_skipped_step(runtime, records, people):
    install(runtime, QUOTE)
    approvals = Approvals(records)
    quote = records.create("quote", {"name": "Q", "discount": 20, "amount": 100}, actor=as_(people["rep"]))
    request = approvals.submit("quote", quote["id"], "discount", as_(people["rep"]))
    with pytest.raises(ValidationFailed):
        approvals.recall(request, as_(people["boss"]))  # only the submitter recalls
    assert approvals.recall(request, as_(people["rep"])) == "recalled"
    request = approvals.submit("quote", quote["id"], "discount", as_(people["rep"]))
    assert approvals.reject(request, as_(people["boss"]), "too much") == "rejected"
    assert records.get("quote", quote["id"], actor=SYSTEM)["status"] == "rejected"
    request = approvals.submit("quote", quote["id"], "discount", as_(people["rep"]))
    assert approvals.approve(request, as_(people["boss"])) == "approved"  # finance step skipped: amount <= 10000
    with pytest.raises(ValidationFailed) as info:
        approvals.approve(request, as_(people["boss"]))
    assert info.value.errors[0].code == "not_pending"


def test_business_hours_and_holidays():
    calendar = CalendarDef("Asia/Shanghai", (0, 1, 2, 3, 4), 9 * 60, 18 * 60, frozenset({"2026-11-24"}))
    friday_5pm = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)  # 17:00 Shanghai
    due = add_business_time(friday_5pm, timedelta(hours=2), calendar)
    assert due == datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 Shanghai
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # Monday 17:00; Tuesday is a holiday
    assert add_business_time(monday, timedelta(hours=3), calendar) == datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
    assert business_time_between(friday_5pm, due, calendar) == timedelta(hours=2)


def test_sla_targets_pause_warning_breach_and_met(runtime, records):
    install(runtime, *TICKET.split("---\n"))
    clock = Clock(MONDAY_9)
    actor = Actor(clock=clock)
    vip = records.create("customer", {"name": "VIP", "grade": "A"}, actor=actor)
    ticket = records.create("ticket", {"subject": "Down", "customer": vip["id"]}, actor=actor)
    assert ticket["response_due"] == MONDAY_9 + timedelta(hours=1)
    assert (ticket["response_sla"], ticket["resolution_sla"]) == ("on_track", "on_track")
    worker = Worker(runtime, clock=clock)
    clock.advance(minutes=46)
    worker.run_once()
    assert records.get("ticket", ticket["id"], actor=SYSTEM)["response_sla"] == "warning"
    records.update("ticket", ticket["id"], {"responded_at": clock.now().isoformat()}, actor=Actor(clock=clock))
    assert records.get("ticket", ticket["id"], actor=SYSTEM)["response_sla"] == "met"
    clock.advance(hours=2)
    records.update("ticket", ticket["id"], {"status": "waiting"}, actor=Actor(clock=clock))
    assert records.get("ticket", ticket["id"], actor=SYSTEM)["resolution_sla"] == "paused"
    clock.advance(hours=30)  # waiting on the customer does not count
    worker.run_once()
    resumed = records.update("ticket", ticket["id"], {"status": "open"}, actor=Actor(clock=clock))
    assert resumed["resolution_sla"] == "on_track"
    assert resumed["resolution_due"] == MONDAY_9 + timedelta(hours=24 + 30)
    clock.advance(hours=22)
    worker.run_once()
    breached = records.get("ticket", ticket["id"], actor=SYSTEM)
    assert (breached["resolution_sla"], breached["priority"]) == ("breached", "high")  # breach action ran
    from metacrm.engine.records.query import Query

    listed = records.list("ticket", Query(filter=[["resolution_sla", "eq", "breached"]]), actor=SYSTEM).records
    assert [t["id"] for t in listed] == [ticket["id"]]


def test_sla_policy_follows_the_customer_and_uses_business_hours(runtime, records):
    install(runtime, *TICKET.split("---\n"))
    clock = Clock(MONDAY_9)
    other = records.create("customer", {"name": "Other", "grade": "B"}, actor=Actor(clock=clock))
    ticket = records.create("ticket", {"subject": "Slow", "customer": other["id"]}, actor=Actor(clock=clock))
    assert ticket["response_due"] == MONDAY_9 + timedelta(hours=4)
    # 72 working hours = eight 9-hour days: Mon 23 .. Wed Dec 2, 18:00 in Shanghai
    assert ticket["resolution_due"] == datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)


def test_approval_conditions_can_read_related_records(runtime, records, people):
    install(runtime, """
name: company
fields:
  - {name: name, type: text, required: true}
  - {name: tier, type: picklist, options: [gold, basic]}
""", """
name: purchase
fields:
  - {name: name, type: text, required: true}
  - {name: company, type: lookup, target: company}
approval_processes:
  - name: gold_check
    entry_condition: "company.tier == 'gold'"
    steps: [{name: manager, approvers: [manager]}]
""")
    gold = records.create("company", {"name": "G", "tier": "gold"}, actor=SYSTEM)
    basic = records.create("company", {"name": "B", "tier": "basic"}, actor=SYSTEM)
    approvals = Approvals(records)
    ok = records.create("purchase", {"name": "o1", "company": gold["id"]}, actor=as_(people["rep"]))
    assert approvals.submit("purchase", ok["id"], "gold_check", as_(people["rep"])) > 0
    refused = records.create("purchase", {"name": "o2", "company": basic["id"]}, actor=as_(people["rep"]))
    with pytest.raises(ValidationFailed) as info:
        approvals.submit("purchase", refused["id"], "gold_check", as_(people["rep"]))
    assert info.value.errors[0].code == "entry_condition"
