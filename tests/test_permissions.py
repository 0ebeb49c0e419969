"""Permissions enforced in the record engine, on SQLite and PostgreSQL: a matrix of roles ×
operations × scopes on seeded data, field-level security, sharing, pools, admin and system."""

from __future__ import annotations

import pytest

from metacrm.engine import identity
from metacrm.engine.automation import pools
from metacrm.engine.errors import NotFound, PermissionDenied, ValidationFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query, QueryError
from metacrm.engine.security import sharing
from tests.conftest import install

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true, searchable: true}
  - {name: amount, type: currency}
  - {name: margin, type: percent}
  - {name: discount, type: percent}
  - {name: margin_amount, type: formula, result_type: currency, expression: "amount * margin / 100"}
  - {name: notes, type: text, searchable: true}
pools:
  - {name: shared_pool, members: ["group:east"]}
permissions:
  rep: {create: true, read: own, edit: own, fields: {margin: hidden, discount: read_only}}
  manager: {create: true, read: subordinates, edit: subordinates, delete: subordinates}
  lead: {read: team, edit: own}
  auditor: {read: all, export: true, fields: {margin: hidden, notes: hidden}}
  nobody: {read: none}
"""
MEMO = """
name: memo
fields:
  - {name: body, type: text}
"""


@pytest.fixture
def world(runtime, records):
    install(runtime, DEAL, MEMO)
    with runtime.db.begin() as conn:
        boss = identity.create_user(conn, "Boss", "boss@x.com", roles=["manager"])
        mid = identity.create_user(conn, "Mid", "mid@x.com", manager=boss.id, roles=["manager"])
        r1 = identity.create_user(conn, "R1", "r1@x.com", manager=mid.id, roles=["rep"], groups_=["east"])
        r2 = identity.create_user(conn, "R2", "r2@x.com", manager=boss.id, roles=["rep"], groups_=["east"])
        w = identity.create_user(conn, "W", "w@x.com", roles=["rep", "lead"], groups_=["west"])
        lead = identity.create_user(conn, "Lead", "lead@x.com", roles=["lead"], groups_=["east"])
        aud = identity.create_user(conn, "Aud", "aud@x.com", roles=["auditor"])
        nob = identity.create_user(conn, "Nob", "nob@x.com", roles=["nobody"])
        adm = identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"])
    users = {u.name: u.id for u in (boss, mid, r1, r2, w, lead, aud, nob, adm)}
    roles = {"Boss": {"manager"}, "Mid": {"manager"}, "R1": {"rep"}, "R2": {"rep"}, "W": {"rep", "lead"},
             "Lead": {"lead"}, "Aud": {"auditor"}, "Nob": {"nobody"}, "Adm": {"admin"}}
    actors = {n: Actor(user_id=users[n], roles=frozenset(roles[n])) for n in users}
    deals = {}
    for owner in ("Boss", "Mid", "R1", "R2", "W"):
        made = records.create("deal", {"name": f"{owner} deal", "amount": 1000, "margin": 30, "discount": 5,
                                       "notes": f"secret note {owner}", "owner": users[owner]}, actor=SYSTEM)
        deals[owner] = made["id"]
    pooled = records.create("deal", {"name": "Pool deal", "amount": 10}, actor=SYSTEM)
    with runtime.db.begin() as conn:
        pools.put(records, conn, "deal", pooled["id"], "shared_pool", Actor(system=True))
    deals["pool"] = pooled["id"]
    return users, actors, deals


def names(records, actor, **query):
    return sorted(r["name"] for r in records.list("deal", Query(limit=100, **query), actor=actor).records)


EXPECTED_READ = {
    "R1": ["Pool deal", "R1 deal"],                       # own + pool of the east group
    "R2": ["Pool deal", "R2 deal"],
    "W": ["W deal"],                                      # own (rep); lead: team = the west group = W alone
    "Mid": ["Mid deal", "R1 deal"],                       # own + subordinates
    "Boss": ["Boss deal", "Mid deal", "R1 deal", "R2 deal"],
    "Lead": ["Pool deal", "R1 deal", "R2 deal"],          # team: east = R1, R2, Lead (+ east pool)
    "Aud": ["Boss deal", "Mid deal", "Pool deal", "R1 deal", "R2 deal", "W deal"],
    "Nob": [],
    "Adm": ["Boss deal", "Mid deal", "Pool deal", "R1 deal", "R2 deal", "W deal"],
}


@pytest.mark.parametrize("who", sorted(EXPECTED_READ))
def test_read_scope_list_count_search_get(world, records, who):
    users, actors, deals = world
    actor = actors[who]
    assert names(records, actor) == EXPECTED_READ[who]
    assert records.count("deal", None, actor=actor) == len(EXPECTED_READ[who])
    assert names(records, actor, search="deal") == EXPECTED_READ[who]
    for owner, record_id in deals.items():
        visible = any(n.startswith(owner if owner != "pool" else "Pool") for n in EXPECTED_READ[who])
        if visible:
            assert records.get("deal", record_id, actor=actor)["id"] == record_id
        else:
            with pytest.raises(NotFound):  # a record you may not see does not exist for you
                records.get("deal", record_id, actor=actor)


@pytest.mark.parametrize("who, hidden", [("R1", {"margin", "margin_amount"}), ("Aud", {"margin", "margin_amount", "notes"}),
                                         ("Boss", set()), ("Adm", set())])
def test_hidden_fields_never_leave_the_engine(world, records, who, hidden):
    users, actors, deals = world
    actor = actors[who]
    for record in records.list("deal", Query(limit=100), actor=actor).records:
        assert hidden.isdisjoint(record)
        assert "30" not in str({k: v for k, v in record.items() if k in hidden})
    if hidden:
        for attempt in (dict(filter=[["margin", "gt", 10]]), dict(sort=("margin",)), dict(fields=("margin",))):
            with pytest.raises(QueryError):
                records.list("deal", Query(**attempt), actor=actor)
    if "notes" in hidden:
        assert names(records, actor, search="secret") == []  # hidden fields are not searched


def test_hidden_fields_are_not_in_history(world, records):
    users, actors, deals = world
    records.update("deal", deals["R1"], {"margin": 35, "amount": 1100}, actor=SYSTEM)
    fields = {h["field"] for h in records.history("deal", deals["R1"], actor=actors["R1"])}
    assert fields == {"amount"}
    assert {"margin", "amount"} <= {h["field"] for h in records.history("deal", deals["R1"], actor=actors["Boss"])}


def test_write_rules_follow_edit_and_delete_scopes(world, records):
    users, actors, deals = world
    r1 = actors["R1"]
    assert records.update("deal", deals["R1"], {"amount": 1}, actor=r1)["amount"] == 1
    with pytest.raises(NotFound):
        records.update("deal", deals["R2"], {"amount": 1}, actor=r1)
    with pytest.raises(PermissionDenied):  # sees the pool record, but only claiming makes it theirs
        records.update("deal", deals["pool"], {"amount": 1}, actor=r1)
    with pytest.raises(PermissionDenied):
        records.delete("deal", deals["R1"], actor=r1)
    with pytest.raises(ValidationFailed) as info:
        records.update("deal", deals["R1"], {"discount": 50}, actor=r1)
    assert info.value.errors[0].code == "read_only"
    with pytest.raises(ValidationFailed) as info:
        records.update("deal", deals["R1"], {"margin": 50}, actor=r1)
    assert info.value.errors[0].code == "unknown_field" and "50" not in str(info.value)
    with pytest.raises(PermissionDenied):
        records.update("deal", deals["R1"], {"amount": 2}, actor=actors["Lead"])  # lead reads the team, edits own
    records.delete("deal", deals["R1"], actor=actors["Mid"])  # managers delete what their reports own
    with pytest.raises(NotFound):
        records.delete("deal", deals["W"], actor=actors["Boss"])
    with pytest.raises(PermissionDenied):
        records.create("deal", {"name": "x"}, actor=actors["Aud"])
    with pytest.raises(PermissionDenied):
        records.create("deal", {"name": "x"}, actor=actors["Nob"])
    made = records.create("deal", {"name": "R2 new", "margin": 10}, actor=actors["Boss"])
    assert made["margin"] == 10


def test_sharing_grants_read_or_edit(world, records):
    users, actors, deals = world
    r2 = actors["R2"]
    with pytest.raises(NotFound):
        records.get("deal", deals["W"], actor=r2)
    sharing.share(records, "deal", deals["W"], actors["W"], user_id=users["R2"], access="read")
    assert records.get("deal", deals["W"], actor=r2)["name"] == "W deal"
    with pytest.raises(PermissionDenied):
        records.update("deal", deals["W"], {"amount": 5}, actor=r2)
    sharing.share(records, "deal", deals["W"], actors["W"], group="east", access="edit")
    assert records.update("deal", deals["W"], {"amount": 5}, actor=actors["R1"])["amount"] == 5
    with pytest.raises(NotFound):
        sharing.share(records, "deal", deals["Boss"], r2, user_id=users["R1"])  # cannot share what you cannot see
    sharing.unshare(records, "deal", deals["W"], actors["W"], group="east")
    sharing.unshare(records, "deal", deals["W"], actors["W"], user_id=users["R2"])
    with pytest.raises(NotFound):
        records.get("deal", deals["W"], actor=r2)


def test_owner_change_moves_visibility(world, records):
    users, actors, deals = world
    records.update("deal", deals["R1"], {"owner": users["R2"]}, actor=actors["Boss"])  # both report to Boss
    assert "R1 deal" not in names(records, actors["R1"])
    assert "R1 deal" in names(records, actors["R2"])


def test_permission_change_takes_effect_immediately(world, runtime, records):
    users, actors, deals = world
    assert names(records, actors["Nob"]) == []
    install(runtime, DEAL.replace("nobody: {read: none}", "nobody: {read: all}"), MEMO)
    assert len(names(records, actors["Nob"])) == 6


def test_objects_without_permissions_are_open_and_system_is_unrestricted(world, records):
    users, actors, deals = world
    records.create("memo", {"body": "hello"}, actor=actors["Nob"])
    assert records.count("memo", None, actor=actors["R1"]) == 1
    assert len(records.list("deal", Query(limit=100), actor=SYSTEM).records) == 6  # the engine's own (system) view


def test_pool_members_see_but_must_claim(world, records):
    users, actors, deals = world
    assert "Pool deal" not in names(records, actors["W"])
    claimed = pools.claim(records, "deal", deals["pool"], actors["R1"])
    assert claimed["owner"] == users["R1"]
    assert "Pool deal" not in names(records, actors["R2"])


def test_role_changes_take_effect_and_are_audited(world, runtime, records):
    from metacrm.engine.identity import audit

    users, actors, deals = world
    with runtime.db.begin() as conn:
        identity.grant_role(conn, users["Nob"], "auditor", by=users["Adm"])
        roles = identity.roles_of(conn, users["Nob"])
    assert len(names(records, Actor(user_id=users["Nob"], roles=roles))) == 6
    with runtime.db.begin() as conn:
        identity.revoke_role(conn, users["Nob"], "auditor", by=users["Adm"])
        assert identity.roles_of(conn, users["Nob"]) == {"nobody"}
        events = [(e["event"], e["detail"]["role"]) for e in audit.entries(conn) if e["event"].startswith("role_")]
        metadata = [e for e in audit.entries(conn) if e["event"] == "metadata_apply"]
    assert events == [("role_revoked", "auditor"), ("role_granted", "auditor")]
    assert metadata and metadata[0]["detail"]["revision"] == runtime.model.revision
