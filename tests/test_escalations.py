"""Privilege escalations closed, on SQLite and PostgreSQL: manual rules as a write path, lookups to
records the user cannot see, approvals deciding on the submitter's view, conditional rules failing
open, sharing, and own-scope users naming any owner."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation import manual
from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.errors import NotFound, PermissionDenied, ValidationFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.security import auth, sharing
from tests.conftest import install

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: tier, type: picklist, options: [gold, basic]}
  - {name: touched, type: integer}
  - {name: deal_total, type: rollup, rollup: {object: deal, via: account, function: sum, field: amount}}
permissions:
  rep: {create: true, read: own, edit: own}
  viewer: {read: all}
  manager: {create: true, read: subordinates, edit: subordinates}
"""
DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: currency}
  - {name: quantity, type: integer}
  - {name: margin, type: percent}
  - {name: status, type: picklist, options: [open, hot, done], default: open}
  - {name: account_tier, type: formula, result_type: text, expression: "account.tier"}
  - {name: notes, type: text, required_if: "amount / quantity > 1000"}
  - {name: terms, type: text, read_only_if: "amount / quantity > 1000"}
validation_rules:
  - {name: gold_cap, error_when: "account.tier == 'gold' and amount > 5000", message: "Gold accounts cap deals at 5000"}
automations:
  - name: mark_hot
    trigger: {on: manual}
    actions: [{set: {status: "'hot'"}}]
  - name: close
    trigger: {on: manual}
    roles: [manager]
    actions: [{set: {status: "'done'"}}]
  - name: touch_account
    trigger: {on: manual}
    actions: [{update_related: {parent: account, set: {touched: "1"}}}]
  - name: low_margin
    trigger: {on: manual}
    condition: "margin < 10"
    actions: [{set: {status: "'hot'"}}]
  - name: remind
    trigger: {on: manual}
    actions: [{notify: {to: owner, message: "Look at {{ record.name }}"}}]
approval_processes:
  - name: big
    entry_condition: "amount > 100"
    steps:
      - {name: manager, approvers: [manager]}
      - {name: finance, approvers: ["role:finance"], condition: "margin < 10"}
  - name: finance_first
    steps:
      - {name: finance, approvers: ["role:finance"], condition: "margin < 10"}
      - {name: manager, approvers: [manager]}
  - name: broken
    steps:
      - {name: manager, approvers: [manager]}
      - {name: finance, approvers: ["role:finance"], condition: "amount / quantity > 1"}
permissions:
  rep: {create: true, read: own, edit: own, fields: {margin: hidden}}
  viewer: {read: all}
  manager: {create: true, read: subordinates, edit: subordinates, delete: subordinates}
  finance: {read: all}
  mover: {create: true, read: own, edit: own, transfer: true}
"""


@pytest.fixture
def world(runtime, records):
    install(runtime, ACCOUNT, DEAL)
    with runtime.db.begin() as conn:
        boss = identity.create_user(conn, "Boss", "boss@x.com", roles=["manager"])
        r1 = identity.create_user(conn, "R1", "r1@x.com", manager=boss.id, roles=["rep"], groups_=["east"])
        r2 = identity.create_user(conn, "R2", "r2@x.com", manager=boss.id, roles=["rep"], groups_=["east"])
        out = identity.create_user(conn, "Out", "out@x.com", roles=["rep"])
        viewer = identity.create_user(conn, "Viewer", "viewer@x.com", roles=["viewer"])
        fin = identity.create_user(conn, "Fin", "fin@x.com", roles=["finance"])
        mover = identity.create_user(conn, "Mover", "mover@x.com", roles=["mover"])
        adm = identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"])
        users = {u.name: u.id for u in (boss, r1, r2, out, viewer, fin, mover, adm)}
        tokens = {name: auth.create_token(conn, user_id, "t", auth.utcnow()) for name, user_id in users.items()}
        roles = {name: identity.roles_of(conn, user_id) for name, user_id in users.items()}
    actors = {name: Actor(user_id=users[name], roles=roles[name]) for name in users}
    accounts = {name: records.create("account", {"name": f"{name} account", "tier": "gold", "owner": users[name]}, actor=SYSTEM)["id"]
                for name in ("Boss", "R1", "R2")}
    deals = {name: records.create("deal", {"name": f"{name} deal", "amount": 500, "quantity": 5, "margin": 5,
                                           "owner": users[name], "account": accounts[name]}, actor=SYSTEM)["id"]
             for name in ("Boss", "R1", "R2")}
    return users, actors, tokens, accounts, deals


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def http(runtime, world):
    return TestClient(create_app(runtime))


# -- manual rules --------------------------------------------------------------------------------


def test_a_reader_cannot_change_records_through_a_manual_rule(world, http, records):
    users, actors, tokens, accounts, deals = world
    ran = http.post("/api/v1/records/deal/rules/mark_hot", json={"ids": [deals["R1"]]}, headers=h(tokens["Viewer"]))
    assert ran.status_code == 403 and ran.headers["content-type"] == "application/problem+json"
    assert records.get("deal", deals["R1"], actor=SYSTEM)["status"] == "open"
    # a rule that only sends a message needs no more than reading the record
    reminded = http.post("/api/v1/records/deal/rules/remind", json={"ids": [deals["R1"]]}, headers=h(tokens["Viewer"]))
    assert reminded.status_code == 200 and reminded.json()["matched"] == 1


def test_a_manual_rule_run_reports_each_record_like_a_write(world, http, records):
    users, actors, tokens, accounts, deals = world
    Approvals(records).submit("deal", deals["R1"], "big", actors["R1"])  # locks R1's deal
    mine = records.create("deal", {"name": "R1 second", "amount": 50}, actor=actors["R1"])
    missing = str(uuid.uuid4())
    ran = http.post("/api/v1/records/deal/rules/mark_hot", headers=h(tokens["R1"]),
                    json={"ids": [mine["id"], deals["R2"], missing, deals["R1"]]})
    assert ran.status_code == 207
    results = ran.json()["results"]
    assert results[0] == {"id": mine["id"], "matched": True}
    assert [(r["id"], r["status"]) for r in results[1:]] == [(deals["R2"], 404), (missing, 404), (deals["R1"], 422)]
    assert results[1]["errors"][0]["message"] == f"Deal {deals['R2']} does not exist"  # the same as a missing one
    assert results[3]["errors"][0]["code"] == "locked"
    assert [records.get("deal", i, actor=SYSTEM)["status"] for i in (mine["id"], deals["R2"], deals["R1"])] == ["hot", "open", "open"]
    # one id: the refusal is the answer
    alone = http.post("/api/v1/records/deal/rules/mark_hot", json={"ids": [deals["R2"]]}, headers=h(tokens["R1"]))
    assert alone.status_code == 404 and alone.json()["errors"][0]["code"] == "not_found"


def test_who_may_run_a_manual_rule_is_metadata(world, records):
    users, actors, tokens, accounts, deals = world
    with pytest.raises(PermissionDenied):
        manual.run_manual(records, "deal.close", [deals["R1"]], actors["R1"])
    assert records.get("deal", deals["R1"], actor=SYSTEM)["status"] == "open"
    assert [o.matched for o in manual.run_manual(records, "deal.close", [deals["R1"]], actors["Boss"])] == [True]
    assert [o.matched for o in manual.run_manual(records, "deal.close", [deals["R2"]], actors["Adm"])] == [True]
    assert records.get("deal", deals["R1"], actor=SYSTEM)["status"] == records.get("deal", deals["R2"], actor=SYSTEM)["status"] == "done"


def test_a_manual_rule_changes_related_records_only_with_the_runners_rights(world, records):
    users, actors, tokens, accounts, deals = world
    # R1's deal points at the boss's account (set by the engine): R1 may not change that account
    records.update("deal", deals["R1"], {"account": accounts["Boss"]}, actor=SYSTEM)
    [outcome] = manual.run_manual(records, "deal.touch_account", [deals["R1"]], actors["R1"])
    assert isinstance(outcome.error, PermissionDenied) and accounts["Boss"] not in str(outcome.error)
    assert records.get("account", accounts["Boss"], actor=SYSTEM)["touched"] is None
    [outcome] = manual.run_manual(records, "deal.touch_account", [deals["R1"]], actors["Boss"])
    assert outcome.error is None and records.get("account", accounts["Boss"], actor=SYSTEM)["touched"] == 1


def test_a_manual_rule_sees_the_whole_record(world, records):
    users, actors, tokens, accounts, deals = world
    # the condition reads margin, which R1 may not see: it is evaluated on the whole record
    [outcome] = manual.run_manual(records, "deal.low_margin", [deals["R1"]], actors["R1"])
    assert outcome.matched and records.get("deal", deals["R1"], actor=SYSTEM)["status"] == "hot"


# -- lookups ------------------------------------------------------------------------------------


def test_a_lookup_to_an_invisible_record_fails_like_a_missing_one(world, records):
    users, actors, tokens, accounts, deals = world
    r1 = actors["R1"]

    def refusal(account_id, **data):
        with pytest.raises(ValidationFailed) as info:
            records.create("deal", {"name": "Probe", "amount": 9000, "account": account_id, **data}, actor=r1)
        return [(e.field, e.code, e.message) for e in info.value.errors]

    missing = str(uuid.uuid4())
    expected = [("account", "invalid_reference", "Account refers to a record that does not exist")]
    assert refusal(missing) == expected
    assert refusal(accounts["Boss"]) == expected  # no gold_cap error: nothing is read from the boss's account
    result = records.bulk_update("deal", [{"id": deals["R1"], "account": accounts["R2"]},
                                          {"id": deals["R1"], "account": missing}], actor=r1)
    assert [[e.message for e in result.errors[i]] for i in (0, 1)] == [[expected[0][2]]] * 2
    assert records.get("account", accounts["Boss"], actor=SYSTEM)["deal_total"] == 500  # no rollup moved
    assert records.count("deal", actor=SYSTEM) == 3
    # an unchanged lookup stays as it is, and the engine itself sees everything
    records.update("deal", deals["R1"], {"account": accounts["Boss"]}, actor=SYSTEM)
    kept = records.update("deal", deals["R1"], {"amount": 400, "account": accounts["Boss"]}, actor=r1)
    assert kept["account_tier"] == "gold"
    assert records.get("account", accounts["Boss"], actor=SYSTEM)["deal_total"] == 900


# -- approvals ----------------------------------------------------------------------------------


def test_approval_conditions_see_fields_hidden_from_the_submitter(world, records):
    users, actors, tokens, accounts, deals = world
    approvals = Approvals(records)
    # R1 may not see the margin; the first step's condition reads it (5 < 10): finance approves first
    request = approvals.submit("deal", deals["R1"], "finance_first", actors["R1"])
    assert approvals.approve(request, actors["Fin"]) == "pending"
    assert approvals.approve(request, actors["Boss"]) == "approved"


def test_a_step_condition_that_cannot_be_evaluated_is_not_skipped(world, records):
    users, actors, tokens, accounts, deals = world
    records.update("deal", deals["R1"], {"quantity": 0, "notes": "n"}, actor=SYSTEM)
    approvals = Approvals(records)
    request = approvals.submit("deal", deals["R1"], "broken", actors["R1"])
    assert approvals.approve(request, actors["Boss"]) == "pending"  # amount / 0: the finance step applies


def test_approvals_of_records_you_cannot_see_do_not_exist_for_you(world, http, records):
    users, actors, tokens, accounts, deals = world
    approvals = Approvals(records)
    with pytest.raises(PermissionDenied):  # submitting locks the record: a reader may not
        approvals.submit("deal", deals["R1"], "big", actors["Viewer"])
    request = approvals.submit("deal", deals["R2"], "big", actors["R2"])
    nowhere = request + 1000

    def answer(approval_id, decision, who):
        response = http.post(f"/api/v1/approvals/{approval_id}/{decision}", json={}, headers=h(tokens[who]))
        return response.status_code, response.json()["errors"][0]["code"], \
            response.json()["detail"].replace(str(approval_id), "N")

    for decision in ("approve", "reject", "recall"):
        assert answer(request, decision, "R1") == answer(nowhere, decision, "R1") == (404, "not_found",
                                                                                      "approval N does not exist")
    assert answer(2 ** 70, "approve", "R1") == (404, "not_found", "approval N does not exist")
    approvals.reject(request, actors["Boss"])
    assert answer(request, "approve", "R1")[0] == 404  # not "already rejected"
    assert answer(request, "approve", "Viewer")[1] == "not_pending"  # who may see the record learns its state


# -- conditional rules -------------------------------------------------------------------------------


def test_conditional_rules_that_cannot_be_evaluated_fail_closed(world, records):
    users, actors, tokens, accounts, deals = world
    with pytest.raises(ValidationFailed) as info:  # amount / 0: required
        records.create("deal", {"name": "Zero", "amount": 100, "quantity": 0}, actor=actors["R1"])
    assert [(e.field, e.code) for e in info.value.errors] == [("notes", "required")]
    made = records.create("deal", {"name": "Zero", "amount": 100, "quantity": 0, "notes": "n"}, actor=actors["R1"])
    with pytest.raises(ValidationFailed) as info:  # amount / 0: read-only
        records.update("deal", made["id"], {"terms": "net 30"}, actor=actors["R1"])
    assert [(e.field, e.code) for e in info.value.errors] == [("terms", "read_only")]


# -- sharing -------------------------------------------------------------------------------------


def test_unsharing_needs_edit_rights_and_removes_only_your_own_shares(world, records):
    users, actors, tokens, accounts, deals = world
    sharing.share(records, "deal", deals["R2"], actors["R2"], user_id=users["Out"], access="read")
    with pytest.raises(PermissionDenied):  # Out only reads it
        sharing.unshare(records, "deal", deals["R2"], actors["Out"], user_id=users["Out"])
    sharing.share(records, "deal", deals["R2"], actors["R2"], group="east", access="edit")
    with pytest.raises(PermissionDenied) as info:  # R1 edits it through the share, but did not share it with Out
        sharing.unshare(records, "deal", deals["R2"], actors["R1"], user_id=users["Out"])
    assert info.value.errors[0].code == "not_your_share"
    sharing.share(records, "deal", deals["R2"], actors["R1"], user_id=users["Viewer"], access="edit")
    assert sharing.unshare(records, "deal", deals["R2"], actors["R1"], user_id=users["Viewer"]) == 1
    assert sharing.unshare(records, "deal", deals["R2"], actors["R2"], user_id=users["Out"]) == 1  # the owner may
    with pytest.raises(NotFound):
        sharing.unshare(records, "deal", deals["R2"], actors["R2"], user_id=users["Out"])
    assert [s["group"] for s in sharing.shares_of(records, "deal", deals["R2"], actors["R1"])] == ["east"]


def test_sharing_with_an_unknown_group_or_user_is_refused(world, runtime, records):
    users, actors, tokens, accounts, deals = world
    for who in ({"group": "nope"}, {"user_id": str(uuid.uuid4())}, {"user_id": "not an id"}):
        with pytest.raises(ValidationFailed) as info:
            sharing.share(records, "deal", deals["R1"], actors["R1"], **who)
        assert info.value.errors[0].code in ("unknown_group", "unknown_user")
        with pytest.raises(ValidationFailed):
            sharing.unshare(records, "deal", deals["R1"], actors["R1"], **who)
    with runtime.db.engine.connect() as conn:
        assert conn.execute(sa.select(identity.groups.c.name)).scalars().all() == ["east"]
        assert conn.execute(sa.select(sa.func.count()).select_from(identity.shares)).scalar_one() == 0


def test_sharing_over_http(world, http, records):
    users, actors, tokens, accounts, deals = world
    url = f"/api/v1/records/deal/{deals['R1']}/shares"
    made = http.post(url, json={"user_id": users["Out"], "access": "edit"}, headers=h(tokens["R1"]))
    assert made.status_code == 201
    share = made.json()["share"]
    assert (share["user_id"], share["group"], share["access"], share["granted_by"]) == \
        (users["Out"], None, "edit", users["R1"])
    assert records.update("deal", deals["R1"], {"amount": 7}, actor=actors["Out"])["amount"] == 7
    listed = http.get(url, headers=h(tokens["Out"]))
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["shares"]] == [share["id"]]
    refusals = [
        (http.get(url, headers=h(tokens["R2"])), 404),  # a record R2 cannot see
        (http.post(url, json={"user_id": users["R2"]}, headers=h(tokens["Viewer"])), 403),  # reads, may not share
        (http.post(url, json={"group": "nope"}, headers=h(tokens["R1"])), 422),
        (http.post(url, json={"user_id": users["R2"], "group": "east"}, headers=h(tokens["R1"])), 422),
        (http.post(url, json={"user_id": users["R2"], "access": "own"}, headers=h(tokens["R1"])), 422),
        (http.post(url, json={"user": users["R2"]}, headers=h(tokens["R1"])), 400),
        (http.delete(url, params={"user_id": users["Out"]}, headers=h(tokens["Viewer"])), 403),
        (http.delete(url, params={"who": "x"}, headers=h(tokens["R1"])), 400),
        (http.delete(url, params={"group": "east"}, headers=h(tokens["R1"])), 404),  # not shared with east
    ]
    for response, status in refusals:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
    removed = http.delete(url, params={"user_id": users["Out"]}, headers=h(tokens["R1"]))
    assert removed.status_code == 200 and removed.json() == {"removed": 1}
    assert http.get(url, headers=h(tokens["Out"])).status_code == 404
    document = http.get("/api/v1/openapi.json", headers=h(tokens["R1"])).json()
    assert set(document["paths"]["/api/v1/records/deal/{id}/shares"]) == {"get", "post", "delete"}


# -- owners --------------------------------------------------------------------------------------


def test_users_may_give_records_only_to_owners_whose_records_they_may_edit(world, http, records):
    users, actors, tokens, accounts, deals = world

    def refused(call) -> str:
        with pytest.raises(ValidationFailed) as info:
            call()
        return info.value.errors[0].code

    r1 = actors["R1"]
    assert refused(lambda: records.create("deal", {"name": "x", "owner": users["R2"]}, actor=r1)) == "owner_not_allowed"
    assert refused(lambda: records.update("deal", deals["R1"], {"owner": users["Boss"]}, actor=r1)) == "owner_not_allowed"
    bulk = records.bulk_create("deal", [{"name": "a", "owner": users["R1"]}, {"name": "b", "owner": users["Out"]}], actor=r1)
    assert bulk.written == 1 and bulk.errors[1][0].code == "owner_not_allowed"
    bulk = records.bulk_update("deal", [{"id": deals["R1"], "owner": users["Out"]}], actor=r1)
    assert bulk.errors[0][0].code == "owner_not_allowed"
    csv = f"name,owner\nImported,{users['Out']}\n".encode()
    imported = http.post("/api/v1/records/deal/import", content=csv,
                         headers={**h(tokens["R1"]), "Content-Type": "text/csv"})
    assert imported.json()["created"] == 0 and imported.json()["errors"][0]["errors"][0]["code"] == "owner_not_allowed"
    # a manager gives within the team below them, not outside it
    assert records.update("deal", deals["R1"], {"owner": users["R2"]}, actor=actors["Boss"])["owner"] == users["R2"]
    assert refused(lambda: records.update("deal", deals["R2"], {"owner": users["Out"]}, actor=actors["Boss"])) == \
        "owner_not_allowed"
    # an edit share lets R1 change the record, not take it
    sharing.share(records, "deal", deals["Boss"], actors["Boss"], user_id=users["R1"], access="edit")
    assert refused(lambda: records.update("deal", deals["Boss"], {"owner": users["R1"]}, actor=r1)) == "owner_not_yours"
    # the transfer permission gives to anyone; the engine itself is not limited
    made = records.create("deal", {"name": "moved", "owner": users["Mover"]}, actor=actors["Mover"])
    assert records.update("deal", made["id"], {"owner": users["Out"]}, actor=actors["Mover"])["owner"] == users["Out"]
    assert records.update("deal", deals["Boss"], {"owner": users["Out"]}, actor=SYSTEM)["owner"] == users["Out"]
    assert records.get("deal", deals["R1"], actor=SYSTEM)["owner"] == users["R2"]


def test_roles_say_who_may_run_manual_rules_only():
    from tests.test_metamodel import problems_of

    problems = problems_of("""
name: memo
fields: [{name: body, type: text}]
automations:
  - {name: on_save, trigger: {on: saved}, roles: [manager], actions: [{set: {body: "'x'"}}]}
  - {name: by_hand, trigger: {on: manual}, roles: [manager], actions: [{set: {body: "'y'"}}]}
""")
    assert len(problems) == 1 and "roles say who may run a manual rule; this rule is not manual" in problems[0]
