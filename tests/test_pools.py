"""Public pools (公海) on SQLite and PostgreSQL: claim, limits, cooldown, return, admin assignment, and the
automation that sends customers without follow-up back to the pool."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from metacrm.engine import identity
from metacrm.engine.automation import pools
from metacrm.engine.automation.worker import Worker
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.metamodel.errors import MetadataError
from tests.conftest import documents, install

CUSTOMER = """
name: customer
fields:
  - {name: name, type: text, required: true}
  - {name: source, type: picklist, options: [web, referral]}
pools:
  - name: public
    label: {en: Public pool, zh-CN: 公海}
    members: ["group:sales"]
    admins: ["role:sales_manager"]
    holding_limit: 2
    reclaim_cooldown: 7d
automations:
  - name: web_leads_start_in_the_pool
    trigger: {on: inbound}
    actions: [{pool: {add: public}}]
  - name: no_follow_up_back_to_pool
    trigger: {on: time, since_related: {object: visit, via: customer}, after: 30d}
    condition: "not is_blank(owner)"
    actions: [{pool: {add: public}}]
"""

VISIT = """
name: visit
fields:
  - {name: note, type: text}
  - {name: customer, type: lookup, target: customer}
"""

START = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def setup(runtime):
    install(runtime, CUSTOMER, VISIT)
    with runtime.db.begin() as conn:
        ann = identity.create_user(conn, "Ann", "ann@example.com", groups_=["sales"])
        bob = identity.create_user(conn, "Bob", "bob@example.com", groups_=["sales"])
        outsider = identity.create_user(conn, "Out", "out@example.com")
        boss = identity.create_user(conn, "Boss", "boss@example.com", roles=["sales_manager"])
    return runtime, {"ann": ann.id, "bob": bob.id, "out": outsider.id, "boss": boss.id}


def inbound(records, name, clock):
    return records.create("customer", {"name": name, "source": "web"}, actor=Actor(channel="inbound", clock=clock))


def test_inbound_records_land_in_the_pool_and_members_claim_them(setup, records):
    runtime, users = setup
    clock = Clock(START)
    web = [inbound(records, f"web {i}", clock) for i in range(3)]
    assert all(records.get("customer", c["id"], actor=SYSTEM)["owner"] is None for c in web)
    with runtime.db.engine.connect() as conn:
        assert pools.entry(conn, "customer", web[0]["id"]).pool == "public"
    claimed = pools.claim(records, "customer", web[0]["id"], Actor(user_id=users["ann"], clock=clock))
    assert claimed["owner"] == users["ann"]
    with pytest.raises(ValidationFailed) as info:
        pools.claim(records, "customer", web[0]["id"], Actor(user_id=users["bob"], clock=clock))
    assert info.value.errors[0].code == "not_in_pool"
    with pytest.raises(ValidationFailed) as info:
        pools.claim(records, "customer", web[1]["id"], Actor(user_id=users["out"], clock=clock))
    assert info.value.errors[0].code == "not_a_member"
    pools.claim(records, "customer", web[1]["id"], Actor(user_id=users["ann"], clock=clock))
    with pytest.raises(ValidationFailed) as info:
        pools.claim(records, "customer", web[2]["id"], Actor(user_id=users["ann"], clock=clock))
    assert info.value.errors[0].code == "holding_limit"


def test_return_cooldown_and_admin_assignment(setup, records):
    runtime, users = setup
    clock = Clock(START)
    ann = Actor(user_id=users["ann"], clock=clock)
    customer = inbound(records, "c", clock)
    pools.claim(records, "customer", customer["id"], ann)
    with pytest.raises(ValidationFailed):
        pools.return_(records, "customer", customer["id"], "public", Actor(user_id=users["bob"], clock=clock))
    pools.return_(records, "customer", customer["id"], "public", ann)
    assert records.get("customer", customer["id"], actor=SYSTEM)["owner"] is None
    clock.advance(days=3)
    with pytest.raises(ValidationFailed) as info:
        pools.claim(records, "customer", customer["id"], ann)
    assert info.value.errors[0].code == "cooldown"
    pools.claim(records, "customer", customer["id"], Actor(user_id=users["bob"], clock=clock))  # others may
    pools.return_(records, "customer", customer["id"], "public", Actor(user_id=users["bob"], clock=clock))
    clock.advance(days=5)
    assert pools.claim(records, "customer", customer["id"], ann)["owner"] == users["ann"]
    pools.return_(records, "customer", customer["id"], "public", ann)
    with pytest.raises(ValidationFailed) as info:
        pools.assign(records, "customer", customer["id"], users["bob"], Actor(user_id=users["ann"], clock=clock))
    assert info.value.errors[0].code == "not_a_pool_admin"
    given = pools.assign(records, "customer", customer["id"], users["bob"], Actor(user_id=users["boss"], clock=clock))
    assert given["owner"] == users["bob"]
    history = [(h["field"], h["new_value"]) for h in records.history("customer", customer["id"], actor=SYSTEM)]
    assert ("owner", users["bob"]) == history[-1]


def test_customers_without_follow_up_go_back_to_the_pool(setup, records):
    runtime, users = setup
    clock = Clock(START)
    ann = Actor(user_id=users["ann"], clock=clock)
    quiet = records.create("customer", {"name": "Quiet"}, actor=ann)
    busy = records.create("customer", {"name": "Busy"}, actor=ann)
    worker = Worker(runtime, clock=clock)
    clock.advance(days=20)
    records.create("visit", {"note": "coffee", "customer": busy["id"]}, actor=Actor(user_id=users["ann"], clock=clock))
    clock.advance(days=11)
    worker.run_once()
    assert records.get("customer", quiet["id"], actor=SYSTEM)["owner"] is None
    assert records.get("customer", busy["id"], actor=SYSTEM)["owner"] == users["ann"]
    with runtime.db.engine.connect() as conn:
        assert pools.entry(conn, "customer", quiet["id"]).pool == "public"
        assert pools.entry(conn, "customer", busy["id"]) is None
    clock.advance(days=20)
    worker.run_once()
    assert records.get("customer", busy["id"], actor=SYSTEM)["owner"] is None


def test_pool_action_must_name_a_pool(setup):
    runtime, _ = setup
    bad = CUSTOMER.replace("actions: [{pool: {add: public}}]\n  - name: no_follow", "actions: [{pool: {add: attic}}]\n  - name: no_follow")
    with pytest.raises(MetadataError) as info:
        runtime.plan(documents(bad, VISIT))
    assert "has no pool 'attic'" in str(info.value)


def test_a_claimed_record_without_follow_up_goes_back_to_the_pool(setup, records):
    runtime, users = setup
    clock = Clock(START)
    customer = inbound(records, "web", clock)
    clock.advance(days=40)
    pools.claim(records, "customer", customer["id"], Actor(user_id=users["ann"], clock=clock))
    worker = Worker(runtime, clock=clock)
    clock.advance(days=29)
    worker.run_once()
    assert records.get("customer", customer["id"], actor=SYSTEM)["owner"] == users["ann"]
    clock.advance(days=2)
    worker.run_once()
    assert records.get("customer", customer["id"], actor=SYSTEM)["owner"] is None
