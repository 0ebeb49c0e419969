"""The crm_standard template's behaviour, as its users rely on it, on SQLite and PostgreSQL:
ticket SLAs (key accounts vs business hours), lead assignment and follow-up, stage rules,
discount approval, won-deal email over real SMTP, and the public pool (公海)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.automation import pools
from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import notifications, outbox
from metacrm.engine.automation.worker import Worker
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query
from metacrm.engine.runtime import find_template
from tests.receivers import SMTPServer

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shanghai


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock(MONDAY_9)


@pytest.fixture
def crm(runtime):
    runtime.apply(runtime.plan(find_template("crm_standard").objects))
    return runtime


@pytest.fixture
def people(crm):
    """A sales team with a manager, a director, and support staff."""
    with crm.db.begin() as conn:
        boss = identity.create_user(conn, "Boss", "boss@example.com", roles=["sales_manager", "support_lead"])
        director = identity.create_user(conn, "Dora", "dora@example.com", roles=["sales_director"])
        ann = identity.create_user(conn, "Ann", "ann@example.com", manager=boss.id, groups_=["sales"])
        bob = identity.create_user(conn, "Bob", "bob@example.com", manager=boss.id, groups_=["sales"])
        cat = identity.create_user(conn, "Cat", "cat@example.com", manager=boss.id, groups_=["sales"])
    return {"boss": boss.id, "director": director.id, "ann": ann.id, "bob": bob.id, "cat": cat.id}


def worker(runtime, clock, smtp=None) -> Worker:
    return Worker(runtime, clock=clock, mail=MailSettings("127.0.0.1", smtp.port if smtp else 1, "crm@example.com",
                                                          timeout=5))


def outbox_rows(runtime, kind=None):
    with runtime.db.engine.connect() as conn:
        query = sa.select(outbox).order_by(outbox.c.id)
        if kind:
            query = query.where(outbox.c.kind == kind)
        return [dict(r._mapping) for r in conn.execute(query)]


def inbox(runtime, user_id) -> list[str]:
    with runtime.db.engine.connect() as conn:
        return list(conn.execute(sa.select(notifications.c.message).where(notifications.c.user_id == user_id)
                                 .order_by(notifications.c.id)).scalars())


def error_code(info) -> str:
    return info.value.errors[0].code


# -- tickets: SLA ------------------------------------------------------------------------------


def test_sla_due_times_follow_the_customer_grade_and_business_hours(crm, records, people, clock):
    actor = Actor(user_id=people["ann"], clock=clock)
    key = records.create("account", {"name": "Key Co", "grade": "A"}, actor=actor)
    regular = records.create("account", {"name": "Regular Co", "grade": "B"}, actor=actor)
    vip = records.create("ticket", {"subject": "Down", "account": key["id"]}, actor=actor)
    assert vip["first_response_due"] == MONDAY_9 + timedelta(hours=1)  # grade A: around the clock
    assert vip["resolution_due"] == MONDAY_9 + timedelta(hours=24)
    assert (vip["first_response_sla"], vip["resolution_sla"]) == ("on_track", "on_track")
    normal = records.create("ticket", {"subject": "Slow", "account": regular["id"]}, actor=actor)
    assert normal["first_response_due"] == MONDAY_9 + timedelta(hours=4)
    # 72 working hours = eight 9-hour days: Mon Nov 23 .. Wed Dec 2, 18:00 in Shanghai
    assert normal["resolution_due"] == datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
    no_account = records.create("ticket", {"subject": "Question"}, actor=actor)
    assert no_account["first_response_due"] == MONDAY_9 + timedelta(hours=4)  # standard policy
    # New Year's Eve 17:00 Shanghai: one hour that day, Jan 1 is a holiday, then the weekend
    clock.at = datetime(2026, 12, 31, 9, 0, tzinfo=timezone.utc)
    late = records.create("ticket", {"subject": "Year end", "account": regular["id"]}, actor=Actor(clock=clock))
    assert late["first_response_due"] == datetime(2027, 1, 4, 4, 0, tzinfo=timezone.utc)  # Mon 12:00 Shanghai
    # the SLA fields are the engine's: users cannot write them
    with pytest.raises(ValidationFailed) as info:
        records.update("ticket", vip["id"], {"resolution_due": "2030-01-01T00:00:00Z"}, actor=actor)
    assert error_code(info) == "read_only"


def test_sla_warns_pauses_and_escalates_a_breach(crm, records, people, clock):
    runtime = crm
    agent = Actor(user_id=people["ann"], clock=clock)
    key = records.create("account", {"name": "Key Co", "grade": "A"}, actor=agent)
    ticket = records.create("ticket", {"subject": "Down", "account": key["id"], "priority": "medium"}, actor=agent)
    w = worker(runtime, clock)
    clock.advance(minutes=31)  # 30 minutes before the first response is due
    w.run_once()
    assert records.get("ticket", ticket["id"], actor=SYSTEM)["first_response_sla"] == "warning"
    w.run_once()  # delivers the notification queued by the warning
    assert inbox(runtime, people["ann"]) == [f"SLA warning: {ticket['ticket_number']} Down is due soon"]
    answered = records.update("ticket", ticket["id"], {"first_responded_at": clock.now().isoformat(),
                                                       "status": "open"}, actor=agent)
    assert answered["first_response_sla"] == "met"
    clock.advance(hours=2)
    waiting = records.update("ticket", ticket["id"], {"status": "waiting_on_customer"}, actor=agent)
    assert waiting["resolution_sla"] == "paused"
    clock.advance(hours=30)  # waiting on the customer does not count
    w.run_once()
    resumed = records.update("ticket", ticket["id"], {"status": "open"}, actor=agent)
    assert resumed["resolution_sla"] == "on_track"
    assert resumed["resolution_due"] == MONDAY_9 + timedelta(hours=24 + 30)
    clock.advance(hours=22)  # past the (shifted) resolution due time
    w.run_once()
    breached = records.get("ticket", ticket["id"], actor=SYSTEM)
    assert (breached["resolution_sla"], breached["priority"]) == ("breached", "urgent")
    w.run_once()
    message = f"SLA breached: {ticket['ticket_number']} Down"
    assert message in inbox(runtime, people["ann"]) and inbox(runtime, people["boss"]) == [message]  # owner, manager
    view = next(v for v in runtime.model.object("ticket").layouts["list_views"] if v["name"] == "sla_breached")
    listed = records.list("ticket", Query(filter=[list(c) for c in view["filter"]]), actor=SYSTEM).records
    assert [t["id"] for t in listed] == [ticket["id"]]
    # resolving after the breach does not hide it
    closed = records.update("ticket", ticket["id"], {"status": "resolved"}, actor=agent)
    assert closed["resolution_sla"] == "breached"


def test_urgent_ticket_alerts_support_leads(crm, records, people, clock):
    agent = Actor(user_id=people["ann"], clock=clock)
    records.create("ticket", {"subject": "Minor", "priority": "low"}, actor=agent)
    urgent = records.create("ticket", {"subject": "Site down", "priority": "urgent"}, actor=agent)
    worker(crm, clock).run_once()
    assert inbox(crm, people["boss"]) == [f"Urgent ticket {urgent['ticket_number']}: Site down"]


# -- leads -----------------------------------------------------------------------------------


def test_new_leads_are_dealt_round_robin_to_sales(crm, records, people, clock):
    team = sorted([people["ann"], people["bob"], people["cat"]])
    actor = Actor(clock=clock)
    owners = [records.create("lead", {"last_name": f"Lead {i}", "company": "X"}, actor=actor)["owner"] for i in range(4)]
    assert owners == team + team[:1]
    with crm.db.begin() as conn:  # an empty team: the lead keeps its creator as owner
        conn.execute(sa.delete(identity.group_members))
    kept = records.create("lead", {"last_name": "Solo"}, actor=Actor(user_id=people["boss"], clock=clock))
    assert kept["owner"] == people["boss"]


def test_qualified_lead_gets_a_follow_up_call_and_status_rules_hold(crm, records, people, clock):
    rep = Actor(user_id=people["ann"], clock=clock)
    lead = records.create("lead", {"first_name": "Ada", "last_name": "Lovelace", "company": "Engines"}, actor=rep)
    owner = lead["owner"]
    with pytest.raises(ValidationFailed) as info:  # qualify without working the lead first
        records.update("lead", lead["id"], {"status": "qualified"}, actor=rep)
    assert error_code(info) == "illegal_transition"
    records.update("lead", lead["id"], {"status": "working"}, actor=rep)
    assert records.count("activity", actor=SYSTEM) == 0
    records.update("lead", lead["id"], {"status": "qualified"}, actor=rep)
    (call,) = records.list("activity", actor=SYSTEM).records
    assert (call["subject"], call["type"], call["status"]) == ("Follow up: Ada Lovelace", "call", "planned")
    assert call["due_date"] == clock.today() + timedelta(days=1)
    assert (call["lead"], call["owner"]) == (lead["id"], owner)
    with pytest.raises(ValidationFailed) as info:  # qualified is final
        records.update("lead", lead["id"], {"status": "working"}, actor=rep)
    assert error_code(info) == "illegal_transition"
    # only a sales manager may reopen an unqualified lead
    other = records.create("lead", {"last_name": "Cold"}, actor=rep)
    records.update("lead", other["id"], {"status": "unqualified", "disqualify_reason": "no budget"}, actor=rep)
    with pytest.raises(ValidationFailed) as info:
        records.update("lead", other["id"], {"status": "working"}, actor=rep)
    assert error_code(info) == "transition_not_allowed"
    manager = Actor(user_id=people["boss"], roles=frozenset({"sales_manager"}), clock=clock)
    assert records.update("lead", other["id"], {"status": "working"}, actor=manager)["status"] == "working"


# -- opportunities ---------------------------------------------------------------------------


def test_opportunity_stages_move_in_order_and_only_managers_reopen(crm, records, people, clock):
    rep = Actor(user_id=people["ann"], clock=clock)
    account = records.create("account", {"name": "Acme"}, actor=rep)
    deal = records.create("opportunity", {"name": "Deal", "account": account["id"], "amount": 1000}, actor=rep)
    with pytest.raises(ValidationFailed) as info:  # skipping a stage
        records.update("opportunity", deal["id"], {"stage": "proposal"}, actor=rep)
    assert error_code(info) == "illegal_transition"
    for stage in ("qualification", "proposal", "qualification", "proposal", "negotiation", "closed_won"):
        assert records.update("opportunity", deal["id"], {"stage": stage}, actor=rep)["stage"] == stage
    with pytest.raises(ValidationFailed) as info:
        records.update("opportunity", deal["id"], {"stage": "negotiation"}, actor=rep)
    assert error_code(info) == "illegal_transition"
    with pytest.raises(ValidationFailed) as info:
        records.update("opportunity", deal["id"], {"stage": "closed_lost", "loss_reason": "price"}, actor=rep)
    assert error_code(info) == "illegal_transition"
    with pytest.raises(ValidationFailed) as info:
        records.update("opportunity", deal["id"], {"stage": "prospecting"}, actor=rep)
    assert error_code(info) == "transition_not_allowed"
    manager = Actor(user_id=people["boss"], roles=frozenset({"sales_manager"}), clock=clock)
    assert records.update("opportunity", deal["id"], {"stage": "prospecting"}, actor=manager)["stage"] == "prospecting"
    lost = records.update("opportunity", deal["id"], {"stage": "closed_lost", "loss_reason": "timing"}, actor=rep)
    assert lost["stage"] == "closed_lost"  # any open stage may close


def test_big_discounts_need_approval(crm, records, people, clock):
    rep = Actor(user_id=people["ann"], clock=clock)
    boss, director = Actor(user_id=people["boss"], clock=clock), Actor(user_id=people["director"], clock=clock)
    approvals = Approvals(records)
    account = records.create("account", {"name": "Acme"}, actor=rep)
    with pytest.raises(ValidationFailed) as info:
        records.create("opportunity", {"name": "Bad", "account": account["id"], "discount": 120}, actor=rep)
    assert error_code(info) == "max"
    small = records.create("opportunity", {"name": "Small", "account": account["id"], "discount": 20}, actor=rep)
    with pytest.raises(ValidationFailed) as info:
        approvals.submit("opportunity", small["id"], "discount_approval", rep)
    assert error_code(info) == "entry_condition"

    big = records.create("opportunity", {"name": "Big", "account": account["id"], "amount": 2_000_000,
                                         "discount": 30}, actor=rep)
    request = approvals.submit("opportunity", big["id"], "discount_approval", rep, "strategic customer")
    with pytest.raises(ValidationFailed) as info:  # locked while it waits
        records.update("opportunity", big["id"], {"discount": 50}, actor=rep)
    assert error_code(info) == "locked"
    with pytest.raises(ValidationFailed) as info:  # the director's step has not started
        approvals.approve(request, director)
    assert error_code(info) == "not_an_approver"
    assert approvals.approve(request, boss, "ok") == "pending"  # over 1,000,000: the director decides too
    assert approvals.approve(request, director) == "approved"
    records.update("opportunity", big["id"], {"next_step": "send contract"}, actor=rep)  # unlocked again
    assert [(h["step"], h["decision"]) for h in approvals.history("opportunity", big["id"])] == [
        (None, "submitted"), ("manager", "approved"), ("director", "approved")]

    medium = records.create("opportunity", {"name": "Medium", "account": account["id"], "amount": 50_000,
                                            "discount": 35}, actor=rep)
    request = approvals.submit("opportunity", medium["id"], "discount_approval", rep)
    assert approvals.reject(request, boss, "too much") == "rejected"
    assert records.get("opportunity", medium["id"], actor=SYSTEM)["discount"] == 20
    other = records.create("opportunity", {"name": "Other", "account": account["id"], "amount": 50_000,
                                           "discount": 25}, actor=rep)
    assert approvals.approve(approvals.submit("opportunity", other["id"], "discount_approval", rep), boss) \
        == "approved"  # the director's step is skipped for small amounts
    worker(crm, clock).run_once()
    assert inbox(crm, people["ann"]) == [
        "The discount of 30.00% on Big was approved.",
        "The discount on Medium was rejected and set back to 20%.",
        "The discount of 25.00% on Other was approved."]


def test_won_deal_email_reaches_the_owner_over_smtp(crm, records, people, clock):
    rep = Actor(user_id=people["ann"], clock=clock)
    account = records.create("account", {"name": "Acme"}, actor=rep)
    deal = records.create("opportunity", {"name": "Acme ERP", "account": account["id"], "amount": 120000,
                                          "stage": "negotiation"}, actor=rep)
    records.update("opportunity", deal["id"], {"next_step": "sign"}, actor=rep)
    assert outbox_rows(crm) == []
    records.update("opportunity", deal["id"], {"stage": "closed_won"}, actor=rep)
    with SMTPServer() as smtp:
        w = worker(crm, clock, smtp)
        assert w.run_once() == 2
        (message,) = smtp.messages
    assert message["Subject"] == "Won: Acme ERP"
    assert message["To"] == "ann@example.com" and message["From"] == "crm@example.com"
    assert "Acme ERP was closed won at 120000.00" in message.get_payload()
    assert inbox(crm, people["boss"]) == ["Acme ERP was won"]  # the sales managers hear of it
    assert {r["status"] for r in outbox_rows(crm)} == {"done"}


# -- accounts: public pool ---------------------------------------------------------------------


def test_accounts_without_follow_up_return_to_the_public_pool(crm, records, people, clock):
    ann = Actor(user_id=people["ann"], clock=clock)
    quiet = records.create("account", {"name": "Quiet Co"}, actor=ann)
    busy = records.create("account", {"name": "Busy Co"}, actor=ann)
    orphan = records.create("account", {"name": "Nobody's"}, actor=Actor(clock=clock))
    w = worker(crm, clock)
    clock.advance(days=20)
    records.create("activity", {"subject": "Visit", "type": "visit", "account": busy["id"]}, actor=ann)
    clock.advance(days=9)
    w.run_once()
    assert records.get("account", quiet["id"], actor=SYSTEM)["owner"] == people["ann"]  # not yet 30 days
    clock.advance(days=1, minutes=1)
    w.run_once()
    assert records.get("account", quiet["id"], actor=SYSTEM)["owner"] is None
    assert records.get("account", busy["id"], actor=SYSTEM)["owner"] == people["ann"]  # had a visit 10 days ago
    with crm.db.engine.connect() as conn:
        assert pools.entry(conn, "account", quiet["id"]).pool == "public"
        assert pools.entry(conn, "account", busy["id"]) is None
        assert pools.entry(conn, "account", orphan["id"]) is None  # no owner: nothing to take back
    w.run_once()
    assert inbox(crm, people["ann"]) == [
        "Quiet Co had no follow-up activity for 30 days and went back to the public pool."]
    # a colleague in the sales group claims it from the pool
    claimed = pools.claim(records, "account", quiet["id"], Actor(user_id=people["bob"], clock=clock))
    assert claimed["owner"] == people["bob"]
    clock.advance(days=20)  # 30 days after its last visit, Busy Co goes back too
    w.run_once()
    assert records.get("account", busy["id"], actor=SYSTEM)["owner"] is None
    with pytest.raises(ValidationFailed) as info:  # only the sales group may claim
        pools.claim(records, "account", busy["id"], Actor(user_id=people["director"], clock=clock))
    assert error_code(info) == "not_a_member"
    admin = Actor(user_id=people["boss"], roles=frozenset({"sales_manager"}), clock=clock)
    assert pools.assign(records, "account", busy["id"], people["cat"], admin)["owner"] == people["cat"]
