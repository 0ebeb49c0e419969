"""Derived values stay exact and current: rollups, formulas over them, formulas reading other
records, formulas computed when read, and the system changes these make (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation.tables import execution_log
from metacrm.engine.automation.worker import Worker
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query, QueryError
from metacrm.engine.security import auth
from metacrm.engine.storage.ids import new_id
from metacrm.metamodel.compiler import compile_model
from metacrm.metamodel.errors import MetadataError
from tests.conftest import documents, install

REGION = """
name: region
fields:
  - {name: name, type: text, required: true}
  - {name: deals, type: rollup, rollup: {object: account, via: region, function: sum, field: deals}}
  - {name: busy_accounts, type: rollup, rollup: {object: account, via: region, function: count,
      filter: [[busy, eq, true]]}}
"""

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: region, type: lookup, target: region}
  - {name: grade, type: picklist, options: [A, B, C], default: C}
  - {name: since, type: date}
  - {name: tenure, type: formula, result_type: integer, expression: "days_between(since, today())"}
  - {name: deals, type: rollup, rollup: {object: deal, via: account, function: count}}
  - {name: busy, type: formula, result_type: boolean, expression: "deals >= 1"}
  - {name: status, type: text}
  - {name: note, type: text}
automations:
  - name: active_when_it_has_deals
    trigger: {on: changed, fields: [deals]}
    condition: "deals >= 1"
    actions:
      - set: {status: "'active'"}
  - name: note_when_busy
    trigger: {on: changed, fields: [busy], to: [true]}
    actions:
      - set: {note: "concat('busy with ', deals, ' deal(s)')"}
"""

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: code, type: text, unique: true}
  - {name: account, type: lookup, target: account, on_delete: set_null}
  - {name: account_grade, type: formula, result_type: text, expression: "account.grade"}
  - {name: account_busy, type: formula, result_type: boolean, expression: "account.busy"}
  - {name: region_name, type: formula, result_type: text, expression: "account.region.name"}
  - {name: opened, type: date}
  - {name: age, type: formula, result_type: integer, expression: "days_between(opened, today())"}
  - {name: stale, type: formula, result_type: boolean, expression: "age > 30"}
  - {name: account_tenure, type: formula, result_type: integer, expression: "account.tenure"}
"""

DAY0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def at(moment: datetime, **extra) -> Actor:
    return Actor(clock=FixedClock(moment), **extra)


@pytest.fixture
def crm(runtime):
    install(runtime, REGION, ACCOUNT, DEAL)
    return runtime


# -- rollups are system changes of the parent ------------------------------------------------


def test_child_insert_bumps_the_parent_version_and_recomputes_formulas_over_the_rollup(crm, records):
    account = records.create("account", {"name": "Acme"}, actor=at(DAY0))
    assert (account["version"], account["deals"], account["busy"]) == (1, 0, False)
    later = DAY0 + timedelta(hours=2)
    records.create("deal", {"name": "D1", "account": account["id"]}, actor=at(later))
    fresh = records.get("account", account["id"], actor=SYSTEM)
    assert fresh["deals"] == 1 and fresh["busy"] is True  # deals >= 1 agrees with deals == 1
    assert fresh["version"] > 1 and fresh["updated_at"] == later
    assert fresh["updated_by"] == account["updated_by"]  # the system change names no new editor
    # rollups and formulas write no history; the rules that watch them change real fields, which do
    assert {h["field"] for h in records.history("account", account["id"], actor=SYSTEM)} == {"status", "note"}


def test_changed_rules_fire_on_rollups_and_on_formulas_the_system_recomputes(crm, records):
    account = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    records.create("deal", {"name": "D1", "account": account["id"]}, actor=SYSTEM)
    fresh = records.get("account", account["id"], actor=SYSTEM)
    assert fresh["status"] == "active" and fresh["note"] == "busy with 1 deal(s)"
    records.create("deal", {"name": "D2", "account": account["id"]}, actor=SYSTEM)
    assert records.get("account", account["id"], actor=SYSTEM)["note"] == "busy with 1 deal(s)"  # busy did not change again
    crm.automation_log.flush()
    with crm.db.read() as conn:
        lines = conn.execute(sa.select(execution_log.c.rule, execution_log.c.trigger, execution_log.c.result)
                             .where(execution_log.c.object == "account")).all()
    assert ("note_when_busy", "updated", "matched") in lines
    assert [r for r in lines if r.rule == "active_when_it_has_deals" and r.result == "matched"] == [
        ("active_when_it_has_deals", "updated", "matched")] * 2


def test_grandparents_follow_a_rollup_of_a_rollup_and_a_rollup_over_a_formula(crm, records):
    north = records.create("region", {"name": "North"}, actor=SYSTEM)
    south = records.create("region", {"name": "South"}, actor=SYSTEM)
    a = records.create("account", {"name": "A", "region": north["id"]}, actor=SYSTEM)
    b = records.create("account", {"name": "B", "region": north["id"]}, actor=SYSTEM)
    records.bulk_create("deal", [{"name": f"D{i}", "account": (a if i % 2 else b)["id"]} for i in range(5)], actor=SYSTEM)
    region = records.get("region", north["id"], actor=SYSTEM)
    assert (region["deals"], region["busy_accounts"]) == (5, 2) and region["version"] > 1
    deal = records.list("deal", Query(filter=[["account", "eq", a["id"]]], limit=1), actor=SYSTEM).records[0]
    records.update("deal", deal["id"], {"account": None}, actor=SYSTEM)
    records.update("account", a["id"], {"region": south["id"]}, actor=SYSTEM)
    assert (records.get("region", north["id"], actor=SYSTEM)["deals"], records.get("region", north["id"], actor=SYSTEM)["busy_accounts"]) == (3, 1)
    assert (records.get("region", south["id"], actor=SYSTEM)["deals"], records.get("region", south["id"], actor=SYSTEM)["busy_accounts"]) == (1, 1)
    for d in records.list("deal", Query(filter=[["account", "eq", b["id"]]]), actor=SYSTEM).records:
        records.delete("deal", d["id"], actor=SYSTEM)
    assert records.get("region", north["id"], actor=SYSTEM)["busy_accounts"] == 0
    assert records.get("account", b["id"], actor=SYSTEM)["busy"] is False


def test_a_child_bulk_write_refreshes_its_parents_with_a_constant_number_of_statements(runtime, records):
    install(runtime, """
name: team
fields:
  - {name: name, type: text}
  - {name: size, type: rollup, rollup: {object: member, via: team, function: count}}
  - {name: big, type: formula, result_type: boolean, expression: "size >= 2"}
""", """
name: member
fields:
  - {name: team, type: lookup, target: team}
""")
    statements = []
    listener = lambda *args: statements.append(1)  # noqa: E731

    def count_for(teams: int) -> int:
        ids = [r["id"] for r in records.bulk_create("team", [{"name": str(i)} for i in range(teams)], actor=SYSTEM).records]
        statements.clear()
        sa.event.listen(runtime.db.engine, "before_cursor_execute", listener)
        try:
            records.bulk_create("member", [{"team": i} for i in ids for _ in range(2)], actor=SYSTEM)
        finally:
            sa.event.remove(runtime.db.engine, "before_cursor_execute", listener)
        assert all(records.get("team", i, actor=SYSTEM)["big"] is True for i in ids[:3])
        return len(statements)

    assert count_for(3) == count_for(60)


def test_parent_changes_reach_formulas_of_children_and_grandchildren(crm, records):
    region = records.create("region", {"name": "North"}, actor=SYSTEM)
    account = records.create("account", {"name": "Acme", "region": region["id"], "grade": "A"}, actor=SYSTEM)
    created = records.bulk_create("deal", [{"name": f"D{i}", "account": account["id"]} for i in range(3)], actor=SYSTEM).records
    before = {d["id"]: records.get("deal", d["id"], actor=SYSTEM) for d in created}
    assert {d["account_grade"] for d in before.values()} == {"A"}
    assert {d["account_busy"] for d in before.values()} == {True}  # a formula over the rollup it feeds
    records.update("account", account["id"], {"grade": "B"}, actor=SYSTEM)
    records.update("region", region["id"], {"name": "Nord"}, actor=SYSTEM)
    for deal_id, old in before.items():
        fresh = records.get("deal", deal_id, actor=SYSTEM)
        assert (fresh["account_grade"], fresh["region_name"]) == ("B", "Nord")
        assert fresh["version"] == old["version"] + 2
    assert records.list("deal", Query(filter=[["account_grade", "eq", "B"]]), actor=SYSTEM).records != []


def test_a_write_returns_its_record_as_the_system_left_it(crm, records):
    account = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    deal = records.create("deal", {"name": "D1", "account": account["id"]}, actor=SYSTEM)
    assert deal["account_busy"] is True  # the account became busy because of this very deal
    assert deal == records.get("deal", deal["id"], actor=SYSTEM)


def test_derived_values_that_feed_each_other_in_a_loop_stop_with_a_clear_error(runtime, records):
    install(runtime, """
name: node
fields:
  - {name: name, type: text}
  - {name: parent, type: lookup, target: node, on_delete: set_null}
  - {name: weight, type: integer}
  - {name: below, type: rollup, rollup: {object: node, via: parent, function: sum, field: total}}
  - {name: total, type: formula, result_type: integer, expression: "blank_value(weight, 0) + below"}
""")
    a = records.create("node", {"name": "a", "weight": 1}, actor=SYSTEM)
    b = records.create("node", {"name": "b", "weight": 1, "parent": a["id"]}, actor=SYSTEM)
    assert records.get("node", a["id"], actor=SYSTEM)["total"] == 2  # a tree: the sum flows up
    with pytest.raises(ValidationFailed) as info:
        records.update("node", a["id"], {"parent": b["id"]}, actor=SYSTEM)  # a cycle: the sums would grow for ever
    assert info.value.errors[0].code == "derived_loop"
    assert records.get("node", a["id"], actor=SYSTEM)["parent"] is None and records.get("node", a["id"], actor=SYSTEM)["total"] == 2


# -- the REST API: ETags follow system changes -------------------------------------------------


@pytest.fixture
def api(crm):
    with crm.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        other = identity.create_user(conn, "Other", "other@example.com", roles=["admin"])
        now = auth.utcnow()
        tokens = {"admin": auth.create_token(conn, admin.id, "t", now),
                  "other": auth.create_token(conn, other.id, "t", now)}
    return TestClient(create_app(crm)), {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


def test_the_etag_of_a_parent_changes_when_a_child_is_added(api):
    client, headers = api
    account = client.post("/api/v1/records/account", json={"name": "Acme"}, headers=headers["admin"]).json()
    url = f"/api/v1/records/account/{account['id']}"
    etag = client.get(url, headers=headers["admin"]).headers["etag"]
    assert client.get(url, headers={**headers["admin"], "If-None-Match": etag}).status_code == 304
    assert client.post("/api/v1/records/deal", json={"name": "D1", "account": account["id"]},
                       headers=headers["admin"]).status_code == 201
    fresh = client.get(url, headers={**headers["admin"], "If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert fresh.json()["deals"] == 1 and fresh.json()["busy"] is True
    stale = client.patch(url, json={"name": "Acme Ltd"}, headers={**headers["admin"], "If-Match": etag})
    assert stale.status_code == 412  # the version read before the child was added is stale
    assert client.patch(url, json={"name": "Acme Ltd"},
                        headers={**headers["admin"], "If-Match": fresh.headers["etag"]}).status_code == 200


def test_the_etag_of_a_record_covers_formulas_computed_when_read(runtime):
    install(runtime, """
name: task
fields:
  - {name: subject, type: text}
  - {name: mine, type: formula, result_type: boolean, expression: "owner == current_user()"}
""")
    with runtime.db.begin() as conn:
        users = [identity.create_user(conn, n, f"{n}@example.com", roles=["admin"]) for n in ("ann", "bob")]
        tokens = [{"Authorization": f"Bearer {auth.create_token(conn, u.id, 't', auth.utcnow())}"} for u in users]
    client = TestClient(create_app(runtime))
    task = client.post("/api/v1/records/task", json={"subject": "call"}, headers=tokens[0]).json()
    url = f"/api/v1/records/task/{task['id']}"
    ann = client.get(url, headers=tokens[0])
    bob = client.get(url, headers={**tokens[1], "If-None-Match": ann.headers["etag"]})
    assert (ann.json()["mine"], bob.status_code, bob.json()["mine"]) == (True, 200, False)
    assert client.get(url, headers={**tokens[0], "If-None-Match": ann.headers["etag"]}).status_code == 304
    assert client.patch(url, json={"subject": "call back"},
                        headers={**tokens[1], "If-Match": bob.headers["etag"]}).status_code == 200


# -- formulas that read the clock -------------------------------------------------------------


def test_a_today_formula_is_current_when_read_after_the_clock_moves(crm, records):
    account = records.create("account", {"name": "Acme", "since": DAY0.date() - timedelta(days=100)}, actor=at(DAY0))
    deal = records.create("deal", {"name": "D1", "account": account["id"], "opened": DAY0.date()}, actor=at(DAY0))
    assert (deal["age"], deal["stale"], deal["account_tenure"]) == (0, False, 100)
    later = at(DAY0 + timedelta(days=45))
    fresh = records.get("deal", deal["id"], actor=later)
    assert (fresh["age"], fresh["stale"], fresh["account_tenure"]) == (45, True, 145)
    listed = records.list("deal", Query(), actor=later).records[0]
    assert (listed["age"], listed["stale"]) == (45, True)
    assert records.get("account", account["id"], actor=later)["tenure"] == 145
    updated = records.update("deal", deal["id"], {"name": "D1b"}, actor=later)  # the pipeline agrees with reads
    assert (updated["age"], updated["stale"]) == (45, True)


def test_formulas_computed_when_read_cannot_be_filtered_or_sorted(crm, records):
    records.create("deal", {"name": "D1", "opened": date(2026, 1, 1)}, actor=SYSTEM)
    queries = (Query(filter=[["age", "gt", 3]]), Query(filter={"not": ["stale", "eq", True]}), Query(sort=("-age",)))
    for query in queries:
        with pytest.raises(QueryError) as info:
            records.list("deal", query, actor=SYSTEM)
        assert "computed when read" in info.value.errors[0].message


def test_a_rollup_cannot_aggregate_a_formula_computed_when_read():
    with pytest.raises(MetadataError) as info:
        compile_model(documents(ACCOUNT, """
name: region
fields:
  - {name: name, type: text}
  - {name: oldest, type: rollup, rollup: {object: account, via: region, function: max, field: tenure}}
""", DEAL))
    assert "computed when read" in str(info.value)


def test_scheduled_rules_see_formulas_computed_when_read_as_of_the_run(runtime, records):
    class Clock(FixedClock):
        def advance(self, **delta):
            self.at += timedelta(**delta)

    install(runtime, """
name: task
fields:
  - {name: subject, type: text}
  - {name: due, type: date}
  - {name: overdue, type: formula, result_type: boolean, expression: "due < today()"}
  - {name: flagged, type: boolean, default: false}
automations:
  - name: flag_overdue
    trigger: {on: schedule, cron: "0 2 * * *"}
    condition: "overdue"
    actions: [{set: {flagged: "true"}}]
""")
    clock = Clock(DAY0)
    task = records.create("task", {"subject": "call", "due": DAY0.date() + timedelta(days=1)}, actor=Actor(clock=clock))
    worker = Worker(runtime, clock=clock)
    worker.run_once()  # registers the schedule: next run tomorrow 02:00
    clock.advance(days=3)
    worker.run_once()
    assert records.get("task", task["id"], actor=Actor(clock=clock))["flagged"] is True


def test_deleting_a_parent_updates_what_children_derived_from_it(crm, records):
    region = records.create("region", {"name": "North"}, actor=SYSTEM)
    account = records.create("account", {"name": "Acme", "grade": "A", "region": region["id"]}, actor=SYSTEM)
    deal = records.create("deal", {"name": "D1", "account": account["id"]}, actor=SYSTEM)
    assert (deal["account_grade"], deal["region_name"]) == ("A", "North")
    records.delete("account", account["id"], actor=SYSTEM)  # deals keep existing, without an account (set_null)
    fresh = records.get("deal", deal["id"], actor=SYSTEM)
    assert (fresh["account"], fresh["account_grade"], fresh["region_name"]) == (None, None, None)
    assert fresh["version"] > deal["version"]
    assert records.get("region", region["id"], actor=SYSTEM)["deals"] == 0


def test_children_deleted_by_cascade_leave_their_other_parents_rollups_right(crm, records):
    install(crm, """
name: product
fields:
  - {name: name, type: text}
  - {name: lines, type: rollup, rollup: {object: line, via: product, function: count}}
""", """
name: line
fields:
  - {name: deal, type: master_detail, target: deal}
  - {name: product, type: lookup, target: product, on_delete: set_null}
""")
    product = records.create("product", {"name": "Widget"}, actor=SYSTEM)
    deal = records.create("deal", {"name": "D1"}, actor=SYSTEM)
    records.bulk_create("line", [{"deal": deal["id"], "product": product["id"]}] * 3, actor=SYSTEM)
    assert records.get("product", product["id"], actor=SYSTEM)["lines"] == 3
    records.delete("deal", deal["id"], actor=SYSTEM)  # its lines go with it
    fresh = records.get("product", product["id"], actor=SYSTEM)
    assert fresh["lines"] == 0 and records.count("line", actor=SYSTEM) == 0


def test_a_delete_refused_deeper_down_is_a_clean_error(crm, records):
    install(crm, """
name: line
fields:
  - {name: deal, type: master_detail, target: deal}
""", """
name: shipment
fields:
  - {name: line, type: lookup, target: line}
""")
    deal = records.create("deal", {"name": "D1"}, actor=SYSTEM)
    line = records.create("line", {"deal": deal["id"]}, actor=SYSTEM)
    records.create("shipment", {"line": line["id"]}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as info:
        records.delete("deal", deal["id"], actor=SYSTEM)  # its line would go with it, but a shipment refers to the line
    assert [e.code for e in info.value.errors] == ["restricted"]
    assert records.get("deal", deal["id"], actor=SYSTEM)["name"] == "D1"



def test_children_written_concurrently_under_one_parent_do_not_wait_for_each_other(runtime, records):
    install(runtime, """
name: team
fields:
  - {name: name, type: text}
  - {name: size, type: rollup, rollup: {object: member, via: team, function: count}}
  - {name: newest, type: text}
""", """
name: member
fields:
  - {name: name, type: text}
  - {name: team, type: lookup, target: team}
automations:
  - name: tell_the_team
    trigger: {on: created}
    actions: [{update_related: {parent: team, set: {newest: name}}}]
""")
    team = records.create("team", {"name": "Red"}, actor=SYSTEM)
    done: dict = {}

    def second():
        try:
            done["record"] = records.create("member", {"name": "second", "team": team["id"]}, actor=SYSTEM)
        except Exception as exc:  # reported below
            done["error"] = exc

    with runtime.db.engine.connect() as conn:
        transaction = conn.begin()
        now = datetime.now(timezone.utc)  # a writer that has inserted its child holds a key share lock
        conn.execute(runtime.tables()["member"].insert().values(  # on the team until it commits ...
            id=new_id(), name="first", team=team["id"], version=1, created_at=now, updated_at=now))
        thread = threading.Thread(target=second)
        thread.start()
        if runtime.db.is_postgresql:  # ... which must not hold up another writer updating the team
            thread.join(60)
            assert not thread.is_alive() and "record" in done, done
        records.create("member", {"name": "third", "team": team["id"]}, conn=conn, actor=SYSTEM)  # nor the other way round
        transaction.commit()
    thread.join(60)
    assert "error" not in done, done
    # both engine writes counted; the raw insert above went around the engine (it only stands for
    # another writer's lock), and a count rollup moves by what the engine writes (+1 per member)
    assert records.get("team", team["id"], actor=SYSTEM)["size"] == 2
