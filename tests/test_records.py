"""The record engine on SQLite and PostgreSQL: the write pipeline, integrity, history, concurrency."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from metacrm.engine.errors import Conflict, NotFound, UnknownObject, ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.conftest import install

ACCOUNT = """
name: account
label: {en: Account, zh-CN: 客户}
fields:
  - {name: name, type: text, required: true, max_length: 40, label: {en: Name, zh-CN: 名称}}
  - {name: grade, type: picklist, options: [{value: A, label: {en: Grade A, zh-CN: A类}}, B, C], default: C}
  - {name: code, type: text, unique: true, pattern: "[A-Z]{3}-[0-9]+"}
  - {name: employees, type: integer, min: 0, max: 1000000}
  - {name: website, type: url}
  - {name: since, type: date, default_expression: "today()"}
  - {name: vip, type: boolean, default: false}
  - {name: tags, type: multi_picklist, options: [partner, reseller, key]}
  - {name: open_count, type: rollup, rollup: {object: opportunity, via: account, function: count,
      filter: [[stage, not_in, [won, lost]]]}}
  - {name: won_total, type: rollup, rollup: {object: opportunity, via: account, function: sum, field: amount,
      filter: [[stage, eq, won]]}}
"""

OPPORTUNITY = """
name: opportunity
fields:
  - {name: name, type: text, required: true}
  - {name: account, type: lookup, target: account, required: true}
  - {name: stage, type: picklist, options: [new, won, lost], default: new}
  - {name: amount, type: currency, min: 0}
  - {name: probability, type: percent, default: 10}
  - {name: weighted, type: formula, result_type: currency, expression: "amount * probability / 100"}
  - {name: account_grade, type: formula, result_type: text, expression: "account.grade"}
  - {name: loss_reason, type: text, required_if: "stage == 'lost'"}
  - {name: close_date, type: date}
validation_rules:
  - name: big_deals_need_grade_a
    error_when: "amount > 1000000 and account.grade != 'A'"
    message: {en: Deals over a million need a grade A account, zh-CN: 百万以上的商机需要A类客户}
    field: amount
"""

TICKET = """
name: ticket
fields:
  - {name: number, type: auto_number, auto_number: "TKT-{YYYY}-{0000}"}
  - {name: subject, type: text, required: true}
  - {name: account, type: lookup, target: account, on_delete: set_null}
"""

NOTE = """
name: note
fields:
  - {name: body, type: text}
  - {name: opportunity, type: master_detail, target: opportunity}
"""


@pytest.fixture
def crm(runtime):
    install(runtime, ACCOUNT, OPPORTUNITY, TICKET, NOTE)
    return runtime


def test_create_coerces_defaults_and_returns_system_fields(crm, records):
    user = "0192f0c0-0000-7000-8000-000000000001"
    actor = Actor(user_id=user, clock=FixedClock(datetime(2026, 3, 1, 12, tzinfo=timezone.utc)))
    acct = records.create("account", {"name": "Acme", "employees": "1,200", "vip": "yes", "tags": "key;partner"}, actor=actor)
    assert acct["employees"] == 1200 and acct["vip"] is True
    assert acct["grade"] == "C" and acct["since"] == date(2026, 3, 1)
    assert acct["tags"] == ["partner", "key"]  # kept in option order
    assert acct["owner"] == user and acct["created_by"] == user and acct["version"] == 1
    stored = records.get("account", acct["id"], actor=SYSTEM)
    assert stored == acct


def test_errors_are_reported_together_per_field(crm, records):
    with pytest.raises(ValidationFailed) as info:
        records.create("account", {"name": "x" * 41, "grade": "Z", "employees": -1, "website": "ftp://x",
                                   "code": "abc", "colour": "red", "since": "2026-13-01"}, actor=SYSTEM)
    codes = {(e.field, e.code) for e in info.value.errors}
    assert codes == {("name", "too_long"), ("grade", "invalid_choice"), ("employees", "min"),
                     ("website", "invalid_url"), ("code", "pattern"), ("colour", "unknown_field"),
                     ("since", "invalid_date")}
    assert records.count("account", actor=SYSTEM) == 0


def test_messages_use_the_actor_language(crm, records):
    with pytest.raises(ValidationFailed) as info:
        records.create("account", {}, actor=Actor(language="zh-CN"))
    (error,) = info.value.errors
    assert error.field == "name" and error.message == "名称 为必填项"


def test_picklist_accepts_a_label_from_forms_and_csv(crm, records):
    acct = records.create("account", {"name": "Acme", "grade": "A类"}, actor=SYSTEM)
    assert acct["grade"] == "A"


def test_formula_relation_path_and_validation_rule(crm, records):
    a = records.create("account", {"name": "Acme", "grade": "B"}, actor=SYSTEM)
    opp = records.create("opportunity", {"name": "Deal", "account": a["id"], "amount": "2500.50", "probability": 30}, actor=SYSTEM)
    assert opp["weighted"] == Decimal("750.15")
    assert opp["account_grade"] == "B"
    with pytest.raises(ValidationFailed) as info:
        records.create("opportunity", {"name": "Huge", "account": a["id"], "amount": 2_000_000},
                       actor=Actor(language="zh-CN"))
    (error,) = info.value.errors
    assert (error.field, error.code, error.message) == ("amount", "validation_rule", "百万以上的商机需要A类客户")


def test_conditional_required(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    opp = records.create("opportunity", {"name": "Deal", "account": a["id"]}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as info:
        records.update("opportunity", opp["id"], {"stage": "lost"}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("loss_reason", "required")]
    done = records.update("opportunity", opp["id"], {"stage": "lost", "loss_reason": "price"}, actor=SYSTEM)
    assert done["stage"] == "lost" and done["version"] == 2


def test_lookup_must_exist(crm, records):
    with pytest.raises(ValidationFailed) as info:
        records.create("opportunity", {"name": "Deal", "account": "0192f0c0-0000-7000-8000-00000000dead"}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("account", "invalid_reference")]
    with pytest.raises(ValidationFailed) as info:
        records.create("opportunity", {"name": "Deal", "account": "not-an-id"}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("account", "invalid_reference")]


def test_unique_is_checked_with_a_clear_error(crm, records):
    records.create("account", {"name": "One", "code": "ACM-1"}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as info:
        records.create("account", {"name": "Two", "code": "ACM-1"}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("code", "not_unique")]
    assert records.count("account", actor=SYSTEM) == 1


def test_computed_fields_cannot_be_written(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as info:
        records.update("account", a["id"], {"open_count": 99}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("open_count", "read_only")]


def test_auto_number_per_year(crm, records):
    at = lambda y: Actor(clock=FixedClock(datetime(y, 6, 1, tzinfo=timezone.utc)))  # noqa: E731
    first = records.create("ticket", {"subject": "a"}, actor=at(2026))
    second = records.create("ticket", {"subject": "b"}, actor=at(2026))
    next_year = records.create("ticket", {"subject": "c"}, actor=at(2027))
    assert [first["number"], second["number"], next_year["number"]] == ["TKT-2026-0001", "TKT-2026-0002", "TKT-2027-0001"]
    with pytest.raises(ValidationFailed):
        records.create("ticket", {"subject": ""}, actor=at(2026))
    assert records.create("ticket", {"subject": "d"}, actor=at(2026))["number"] == "TKT-2026-0003"  # failed write used no number


def test_rollups_follow_creates_updates_moves_and_deletes(crm, records):
    a = records.create("account", {"name": "A"}, actor=SYSTEM)
    b = records.create("account", {"name": "B"}, actor=SYSTEM)
    o1 = records.create("opportunity", {"name": "1", "account": a["id"], "amount": 100}, actor=SYSTEM)
    records.create("opportunity", {"name": "2", "account": a["id"], "amount": 50, "stage": "won"}, actor=SYSTEM)
    assert (records.get("account", a["id"], actor=SYSTEM)["open_count"], records.get("account", a["id"], actor=SYSTEM)["won_total"]) == (1, Decimal("50.00"))
    records.update("opportunity", o1["id"], {"stage": "won"}, actor=SYSTEM)
    assert records.get("account", a["id"], actor=SYSTEM)["won_total"] == Decimal("150.00")
    records.update("opportunity", o1["id"], {"account": b["id"]}, actor=SYSTEM)
    assert records.get("account", a["id"], actor=SYSTEM)["won_total"] == Decimal("50.00")
    assert records.get("account", b["id"], actor=SYSTEM)["won_total"] == Decimal("100.00")
    records.delete("opportunity", o1["id"], actor=SYSTEM)
    assert records.get("account", b["id"], actor=SYSTEM)["won_total"] == Decimal("0.00")


def test_history_records_who_changed_what(crm, records):
    user = "0192f0c0-0000-7000-8000-000000000002"
    a = records.create("account", {"name": "Acme", "employees": 5}, actor=SYSTEM)
    records.update("account", a["id"], {"employees": 7, "name": "Acme Ltd"}, actor=Actor(user_id=user))
    records.update("account", a["id"], {"employees": 7}, actor=SYSTEM)  # no change, no entry
    changes = records.history("account", a["id"], actor=SYSTEM)
    assert {(h["field"], h["old_value"], h["new_value"], h["changed_by"]) for h in changes} == {
        ("employees", 5, 7, user), ("name", "Acme", "Acme Ltd", user)}


def test_stale_version_is_refused(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    records.update("account", a["id"], {"name": "First"}, version=1, actor=SYSTEM)
    with pytest.raises(Conflict) as info:
        records.update("account", a["id"], {"name": "Second"}, version=1, actor=SYSTEM)
    assert info.value.current_version == 2
    assert records.get("account", a["id"], actor=SYSTEM)["name"] == "First"


def test_not_found_and_unknown_object(crm, records):
    with pytest.raises(NotFound):
        records.get("account", "0192f0c0-0000-7000-8000-000000000099", actor=SYSTEM)
    with pytest.raises(NotFound):
        records.update("account", "'; drop table account; --", {"name": "x"}, actor=SYSTEM)
    with pytest.raises(UnknownObject):
        records.list("nothing", actor=SYSTEM)


def test_delete_restrict_set_null_and_cascade(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    opp = records.create("opportunity", {"name": "Deal", "account": a["id"]}, actor=SYSTEM)
    records.create("note", {"body": "hi", "opportunity": opp["id"]}, actor=SYSTEM)
    ticket = records.create("ticket", {"subject": "help", "account": a["id"]}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as info:
        records.delete("account", a["id"], actor=SYSTEM)
    assert info.value.errors[0].code == "restricted"
    records.delete("opportunity", opp["id"], actor=SYSTEM)
    assert records.count("note", actor=SYSTEM) == 0  # master-detail cascades
    records.delete("account", a["id"], actor=SYSTEM)
    assert records.get("ticket", ticket["id"], actor=SYSTEM)["account"] is None  # lookup set to null


def test_bulk_create_reports_per_record_errors(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    rows = [{"name": f"deal {i}", "account": a["id"], "amount": i} for i in range(5)]
    rows[2] = {"name": "bad", "account": a["id"], "amount": "lots"}
    rows[4] = {"account": a["id"]}
    result = records.bulk_create("opportunity", rows, actor=SYSTEM)
    assert result.written == 3
    assert sorted(result.errors) == [2, 4]
    assert result.errors[2][0].field == "amount" and result.errors[4][0].code == "required"
    assert records.count("opportunity", actor=SYSTEM) == 3
    assert records.get("account", a["id"], actor=SYSTEM)["open_count"] == 3
    with pytest.raises(ValidationFailed):
        records.bulk_create("opportunity", rows, all_or_none=True, actor=SYSTEM)
    assert records.count("opportunity", actor=SYSTEM) == 3


def test_bulk_create_finds_duplicates_within_the_batch(crm, records):
    result = records.bulk_create("account", [{"name": "a", "code": "AAA-1"}, {"name": "b", "code": "AAA-1"}], actor=SYSTEM)
    assert result.written == 1 and result.errors[1][0].code == "not_unique"


def test_bulk_update_with_versions(crm, records):
    made = records.bulk_create("account", [{"name": f"a{i}"} for i in range(3)], actor=SYSTEM)
    rows = [{"id": made.ids[0], "grade": "A", "version": 1}, {"id": made.ids[1], "grade": "B", "version": 9},
            {"id": made.ids[2], "employees": "many"}]
    result = records.bulk_update("account", rows, actor=SYSTEM)
    assert result.written == 1 and sorted(result.errors) == [1, 2]
    assert result.errors[1][0].code == "conflict"
    assert records.get("account", made.ids[0], actor=SYSTEM)["grade"] == "A"
    assert records.get("account", made.ids[1], actor=SYSTEM)["grade"] == "C"


def test_failed_write_leaves_nothing(crm, records):
    a = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    records.create("opportunity", {"name": "1", "account": a["id"], "amount": 10}, actor=SYSTEM)
    with pytest.raises(ValidationFailed):
        records.update("opportunity", records.list("opportunity", actor=SYSTEM).records[0]["id"], {"amount": 5_000_000}, actor=SYSTEM)
    assert records.get("account", a["id"], actor=SYSTEM)["open_count"] == 1
    assert records.history("opportunity", records.list("opportunity", actor=SYSTEM).records[0]["id"], actor=SYSTEM) == []


def test_owner_must_be_an_existing_user(crm, records, runtime):
    from metacrm.engine import identity

    with pytest.raises(ValidationFailed) as info:
        records.create("account", {"name": "Acme", "owner": "0192f0c0-0000-7000-8000-0000000000ff"}, actor=SYSTEM)
    assert [(e.field, e.code) for e in info.value.errors] == [("owner", "invalid_reference")]
    with runtime.db.begin() as conn:
        real = identity.create_user(conn, "Real", "real@example.com")
    assert records.create("account", {"name": "Acme", "owner": real.id}, actor=SYSTEM)["owner"] == real.id
