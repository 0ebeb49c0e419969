"""Exact decimals on SQLite and PostgreSQL, and list cursors bound to their query.

Decimals keep every digit of their precision through create, get, list, sort, filters,
rollups, formulas, type changes and the CSV export; input that has no exact value in the
field (too many digits, NaN, infinities, exponents out of any range) is refused as a
field or query error. SQLite databases written by the earlier release (decimals stored
as floats) are upgraded in place. A cursor only continues the list it came from.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.csvio import export_rows, import_rows, parse_csv
from metacrm.engine.records.query import Query, QueryError
from metacrm.engine.security import auth
from metacrm.engine.storage.migrator import ApplyError
from metacrm.metamodel.errors import MetadataError
from tests.conftest import documents, install

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: total, type: rollup, rollup: {object: deal, via: account, function: sum, field: amount}}
  - {name: total_4, type: rollup, precision: 18, scale: 4, rollup: {object: deal, via: account, function: sum, field: small}}
  - {name: total_0, type: rollup, scale: 0, rollup: {object: deal, via: account, function: sum, field: small}}
  - {name: average, type: rollup, rollup: {object: deal, via: account, function: avg, field: small}}
  - {name: average_5, type: rollup, scale: 5, rollup: {object: deal, via: account, function: avg, field: small}}
  - {name: average_qty, type: rollup, scale: 3, rollup: {object: deal, via: account, function: avg, field: qty}}
  - {name: lowest, type: rollup, scale: 1, rollup: {object: deal, via: account, function: min, field: small}}
  - {name: highest, type: rollup, rollup: {object: deal, via: account, function: max, field: amount}}
"""
DEAL = """
name: deal
fields:
  - {name: name, type: text, searchable: true}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: currency}
  - {name: small, type: decimal, precision: 10, scale: 2}
  - {name: qty, type: integer}
  - {name: tiny, type: decimal, precision: 3, scale: 3}
  - {name: share, type: formula, result_type: currency, expression: "amount / 1000"}
  - {name: blown_up, type: formula, result_type: currency, expression: "small * 1000000000"}
"""
#: values of currency(18, 2) that a 64-bit float cannot hold
EXACT = ["-9999999999999999.99", "9999999999999999.99", "1234567890123456.78", "4503599627370497.01",
         "0.01", "-0.01", "0.00", "100.10"]


@pytest.fixture
def crm(runtime, records):
    install(runtime, ACCOUNT, DEAL)
    return records


def deal_amounts(records, **query) -> list[str]:
    return [str(r["amount"]) for r in records.list("deal", Query(limit=100, **query), actor=SYSTEM).records]


# -- exact storage ---------------------------------------------------------------------------


def test_decimals_keep_every_digit_through_create_get_list_sort_filter_rollup_and_export(crm, runtime):
    account = crm.create("account", {"name": "Acme"}, actor=SYSTEM)
    made = [crm.create("deal", {"name": v, "amount": v, "account": account["id"]}, actor=SYSTEM) for v in EXACT]
    assert [str(r["amount"]) for r in made] == EXACT
    assert [str(crm.get("deal", r["id"], actor=SYSTEM)["amount"]) for r in made] == EXACT
    assert deal_amounts(crm, sort=("amount",)) == sorted(EXACT, key=Decimal)
    assert deal_amounts(crm, sort=("-amount",)) == sorted(EXACT, key=Decimal, reverse=True)
    assert deal_amounts(crm, filter=[["amount", "eq", "1234567890123456.78"]]) == ["1234567890123456.78"]
    assert deal_amounts(crm, filter=[["amount", "gt", "9999999999999999.98"]]) == ["9999999999999999.99"]
    assert deal_amounts(crm, filter=[["amount", "between", ["4503599627370497.01", "4503599627370497.01"]]]) \
        == ["4503599627370497.01"]
    assert deal_amounts(crm, filter=[["amount", "in", ["100.1", "-0.01"]]], sort=("amount",)) == ["-0.01", "100.10"]
    parent = crm.get("account", account["id"], actor=SYSTEM)
    assert parent["total"] == sum(Decimal(v) for v in EXACT) and str(parent["total"]) == "5738167517494053.89"
    assert str(parent["highest"]) == "9999999999999999.99"
    exported = "".join(chunk for chunk, _ in export_rows(crm, "deal", Query(sort=("amount",)), SYSTEM,
                                                          ["name", "amount", "share"]))
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["amount"] for r in rows] == sorted(EXACT, key=Decimal)
    assert rows[-1]["share"] == "10000000000000.00"  # 9999999999999999.99 / 1000, rounded half up
    with runtime.db.engine.connect() as conn:  # what is stored: scaled integers on SQLite, NUMERIC elsewhere
        stored = conn.execute(sa.text("SELECT amount FROM deal WHERE name = '1234567890123456.78'")).scalar_one()
    assert stored == (123456789012345678 if runtime.db.is_sqlite else Decimal("1234567890123456.78"))


def test_keyset_pages_over_decimals_that_only_differ_past_float_precision(crm):
    values = [f"4503599627370496.{i:02d}" for i in range(7)]
    for v in reversed(values):
        crm.create("deal", {"name": v, "amount": v}, actor=SYSTEM)
    seen, cursor = [], None
    while True:
        page = crm.list("deal", Query(sort=("-amount",), limit=2, cursor=cursor), actor=SYSTEM)
        seen += [str(r["amount"]) for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(values))


# -- the write response is the stored row ---------------------------------------------------------

EVERYTHING = """
name: sample
fields:
  - {name: label, type: text}
  - {name: amount, type: currency}
  - {name: rate, type: percent, precision: 5, scale: 3}
  - {name: at, type: datetime}
  - {name: day, type: date}
  - {name: data, type: json}
  - {name: tags, type: multi_picklist, options: [a, b, c]}
  - {name: flag, type: boolean}
  - {name: count, type: integer}
"""


def test_the_create_and_update_responses_are_the_stored_record(runtime, records):
    install(runtime, EVERYTHING)
    made = records.create("sample", {
        "label": "  trailing spaces  ", "amount": "1234567890123456.78", "rate": "12.5",
        "at": "2024-03-01T10:20:30.123456+05:30", "day": "2024-02-29", "data": {"b": [1, 2.5], "a": None},
        "tags": "c;a", "flag": "yes", "count": "42"}, actor=SYSTEM)
    assert made == records.get("sample", made["id"], actor=SYSTEM)
    assert str(made["amount"]) == "1234567890123456.78" and str(made["rate"]) == "12.500"
    assert made["at"] == datetime(2024, 3, 1, 4, 50, 30, 123456, tzinfo=timezone.utc)
    changed = records.update("sample", made["id"], {"amount": "-9999999999999999.99", "label": "x ",
                                                    "at": "2030-01-01T00:00:00.000001Z"}, actor=SYSTEM)
    assert changed == records.get("sample", made["id"], actor=SYSTEM)
    assert str(changed["amount"]) == "-9999999999999999.99" and changed["version"] == 2
    bulk = records.bulk_create("sample", [{"amount": "4503599627370497.01"}, {"amount": "0.1"}], actor=SYSTEM)
    assert bulk.records == [records.get("sample", i, actor=SYSTEM) for i in bulk.ids]


# -- input that has no exact value is refused ------------------------------------------------------

REFUSED = [
    ("1e-999999999999999999", "too_many_decimals"),
    ("-1e-999999999999999999", "too_many_decimals"),
    ("1.00000000000000000000000000000000001", "too_many_decimals"),
    ("0.001", "too_many_decimals"),
    ("1e999999999999999999", "out_of_range"),
    ("12345678901234567", "out_of_range"),
    ("1E+17", "out_of_range"),
    (10**30, "out_of_range"),
    ("NaN", "invalid_type"),
    ("-sNaN", "invalid_type"),
    ("Infinity", "invalid_type"),
    (float("-inf"), "invalid_type"),
    ("12..5", "invalid_type"),
]


@pytest.mark.parametrize("value, code", REFUSED)
def test_decimal_input_without_an_exact_value_is_a_field_error(crm, runtime, value, code):
    with pytest.raises(ValidationFailed) as caught:
        crm.create("deal", {"name": "x", "amount": value}, actor=SYSTEM)
    assert [(e.field, e.code) for e in caught.value.errors] == [("amount", code)]
    assert crm.count("deal", actor=SYSTEM) == 0


@pytest.mark.parametrize("value", ["1e-999999999999999999", "NaN", "Infinity", "1E+400", "0.001", "12..5", "1e5e5"])
def test_decimal_filter_values_without_an_exact_value_are_query_errors(crm, value):
    crm.create("deal", {"name": "x", "amount": "0"}, actor=SYSTEM)
    for condition in (["amount", "eq", value], ["amount", "lt", value], ["amount", "between", ["0", value]],
                      ["amount", "in", [value]], {"not": ["amount", "ge", value]}):
        with pytest.raises(QueryError):
            crm.list("deal", Query(filter=[condition]), actor=SYSTEM)


def test_tiny_decimals_at_precision_equal_to_scale(crm):
    assert str(crm.create("deal", {"tiny": "0.999"}, actor=SYSTEM)["tiny"]) == "0.999"
    assert str(crm.create("deal", {"tiny": "-0.5"}, actor=SYSTEM)["tiny"]) == "-0.500"
    with pytest.raises(ValidationFailed):
        crm.create("deal", {"tiny": "1"}, actor=SYSTEM)
    assert str(crm.create("deal", {"tiny": "-0.000"}, actor=SYSTEM)["tiny"]) == "0.000"  # no negative zero


@pytest.fixture
def api(crm, runtime):
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        token = auth.create_token(conn, admin.id, "t", auth.utcnow())
    return TestClient(create_app(runtime)), {"Authorization": f"Bearer {token}"}


def test_the_api_keeps_json_numbers_exact_and_refuses_those_without_an_exact_value(api, crm):
    client, headers = api
    body = '{"name": "n", "amount": 1234567890123456.78, "small": 0.1}'
    made = client.post("/api/v1/records/deal", content=body, headers={**headers, "Content-Type": "application/json"})
    assert made.status_code == 201
    assert made.json()["amount"] == "1234567890123456.78" and made.json()["small"] == 0.1
    fetched = client.get(f"/api/v1/records/deal/{made.json()['id']}", headers=headers).json()
    assert fetched == made.json()
    for number in ("1e-999999999999999999", "1.000000000000000000000000001", "1e400", "12345678901234567",
                   "1e999999999999999999999999", "-1e-999999999999999999999999999", "1" + "0" * 900):
        refused = client.post("/api/v1/records/deal", content=f'{{"amount": {number}}}',
                              headers={**headers, "Content-Type": "application/json"})
        assert refused.status_code == 422, number
        assert refused.json()["errors"][0]["field"] == "amount"
    found = client.get("/api/v1/records/deal", params={"filter": '[["amount", "eq", 1234567890123456.78]]'},
                       headers=headers).json()["records"]
    assert [r["id"] for r in found] == [made.json()["id"]]
    for value in ("1e-999999999999999999", '"NaN"', '"Infinity"', "1e400", '"1e5e5"', "1e999999999999999999999",
                  '"-1e-99999999999999999999999"', "9" * 900):
        bad = client.get("/api/v1/records/deal", params={"filter": f'[["amount", "gt", {value}]]'}, headers=headers)
        assert bad.status_code == 422, value
        assert bad.headers["content-type"] == "application/problem+json"
    # a number longer than any JSON number the API reads is a malformed body or filter, not a value
    huge = client.post("/api/v1/records/deal", content='{"amount": 1%s}' % ("0" * 5000),
                       headers={**headers, "Content-Type": "application/json"})
    assert huge.status_code == 400 and huge.headers["content-type"] == "application/problem+json"
    huge = client.get("/api/v1/records/deal", params={"filter": '[["amount", "gt", %s]]' % ("9" * 5000)}, headers=headers)
    assert huge.status_code == 400 and huge.headers["content-type"] == "application/problem+json"
    assert crm.count("deal", actor=SYSTEM) == 1


def test_csv_cells_without_an_exact_value_are_row_errors(crm):
    table = parse_csv("name,amount\nok,1234567890123456.78\nzero,1e-999999999999999999\nnan,NaN\n"
                      "big,99999999999999999\n".encode())
    result = import_rows(crm, "deal", table, SYSTEM)
    assert sorted(result.errors) == [3, 4, 5]
    assert all(errors[0].field == "amount" for errors in result.errors.values())
    assert deal_amounts(crm) == ["1234567890123456.78"]


# -- rollups and formulas ----------------------------------------------------------------------


def test_decimal_rollups_are_exact_and_round_half_away_from_zero(crm):
    account = crm.create("account", {"name": "Acme"}, actor=SYSTEM)
    for small, qty in [("0.05", 1), ("0.10", 2), ("-0.01", 2)]:
        crm.create("deal", {"account": account["id"], "small": small, "qty": qty}, actor=SYSTEM)
    got = crm.get("account", account["id"], actor=SYSTEM)
    assert str(got["total_4"]) == "0.1400" and str(got["total_0"]) == "0"
    assert str(got["average"]) == "0.05"  # 0.14 / 3 = 0.04666...
    assert str(got["average_5"]) == "0.04667"
    assert str(got["average_qty"]) == "1.667"
    assert str(got["lowest"]) == "0.0"  # -0.01 at scale 1
    crm.create("deal", {"account": account["id"], "small": "-0.30"}, actor=SYSTEM)
    got = crm.get("account", account["id"], actor=SYSTEM)
    assert str(got["lowest"]) == "-0.3" and str(got["total_0"]) == "0"
    assert str(got["average"]) == "-0.04"  # -0.16 / 4 = -0.04
    other = crm.create("account", {"name": "Ties"}, actor=SYSTEM)
    for small in ("-0.05", "0.00"):
        crm.create("deal", {"account": other["id"], "small": small}, actor=SYSTEM)
    tie = crm.get("account", other["id"], actor=SYSTEM)
    assert str(tie["average"]) == "-0.03" and str(tie["total_0"]) == "0"  # -0.025 rounds away from zero
    crm.create("deal", {"account": other["id"], "small": "-0.45"}, actor=SYSTEM)
    assert str(crm.get("account", other["id"], actor=SYSTEM)["total_0"]) == "-1"  # -0.50 rounds away from zero
    empty = crm.create("account", {"name": "Empty"}, actor=SYSTEM)
    assert empty["average"] is None and str(empty["total"]) == "0.00" and empty["lowest"] is None


def test_a_rollup_that_outgrows_its_precision_is_a_clean_error_and_writes_nothing(crm, runtime):
    account = crm.create("account", {"name": "Acme"}, actor=SYSTEM)
    crm.create("deal", {"account": account["id"], "amount": "9999999999999999.99"}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as caught:
        crm.create("deal", {"account": account["id"], "amount": "0.01"}, actor=SYSTEM)
    assert caught.value.errors[0].code == "out_of_range"
    assert crm.count("deal", actor=SYSTEM) == 1 and str(crm.get("account", account["id"], actor=SYSTEM)["total"]) == "9999999999999999.99"


def test_a_decimal_formula_past_its_precision_is_a_field_error(crm):
    assert str(crm.create("deal", {"amount": "1234567890123456.78"}, actor=SYSTEM)["share"]) == "1234567890123.46"
    with pytest.raises(ValidationFailed) as caught:
        crm.create("deal", {"small": "99999999.99"}, actor=SYSTEM)  # blown_up would need 17 digits before the point
    assert [(e.field, e.code) for e in caught.value.errors] == [("blown_up", "formula_error")]
    assert crm.count("deal", actor=SYSTEM) == 1


# -- type changes --------------------------------------------------------------------------------


def item(price: str = "decimal, precision: 18, scale: 2", code: str = "text", qty: str = "integer") -> str:
    return f"""
name: item
fields:
  - {{name: price, type: {price}}}
  - {{name: code, type: {code}}}
  - {{name: qty, type: {qty}}}
"""


def test_type_and_scale_changes_convert_exactly_and_refuse_values_that_would_change(runtime, records):
    install(runtime, item())
    made = records.create("item", {"price": "1234567890123456.78", "code": "9999999999999999.99",
                                   "qty": 9007199254740993}, actor=SYSTEM)  # 2**53 + 1: no float holds it
    for refused in (item(price="decimal, precision: 18, scale: 4"),  # 16 digits before the point do not fit 14
                    item(price="decimal, precision: 18, scale: 1"),  # .78 does not fit one place
                    item(price="integer")):
        with pytest.raises(ApplyError):
            install(runtime, refused)
        assert records.get("item", made["id"], actor=SYSTEM) == made  # nothing changed
    install(runtime, item(code="currency", qty="decimal, precision: 18, scale: 0"))
    got = records.get("item", made["id"], actor=SYSTEM)
    assert str(got["code"]) == "9999999999999999.99" and str(got["qty"]) == "9007199254740993"
    records.update("item", made["id"], {"price": "1234567890123456.70"}, actor=SYSTEM)
    install(runtime, item(price="decimal, precision: 17, scale: 1", code="text",
                          qty="decimal, precision: 18, scale: 2"))
    got = records.get("item", made["id"], actor=SYSTEM)
    assert str(got["price"]) == "1234567890123456.7" and got["code"] == "9999999999999999.99"
    assert str(got["qty"]) == "9007199254740993.00"
    install(runtime, item(price="text", code="text", qty="integer"))
    got = records.get("item", made["id"], actor=SYSTEM)
    assert got["price"] == "1234567890123456.7" and got["qty"] == 9007199254740993


def test_sqlite_refuses_precision_it_cannot_store_exactly(runtime):
    wide = item(price="decimal, precision: 30, scale: 4")
    if runtime.db.is_sqlite:
        with pytest.raises(MetadataError, match="precision 30"):
            runtime.plan(documents(wide))
        return
    install(runtime, wide)  # PostgreSQL: NUMERIC(30, 4), every digit kept
    from metacrm.engine.records.service import RecordService

    records = RecordService(runtime)
    value = "12345678901234567890123456.7891"
    assert str(records.create("item", {"price": value}, actor=SYSTEM)["price"]) == value
    assert [str(r["price"]) for r in records.list("item", Query(filter=[["price", "eq", value]]), actor=SYSTEM).records] == [value]


def test_json_fields_refuse_numbers_that_json_cannot_hold(runtime, records):
    install(runtime, EVERYTHING)
    for data in ({"x": float("inf")}, [float("nan")], {"y": Decimal("1E+400")}):
        with pytest.raises(ValidationFailed):
            records.create("sample", {"data": data}, actor=SYSTEM)
    made = records.create("sample", {"data": {"exact": Decimal("0.1"), "whole": Decimal("3")}}, actor=SYSTEM)
    assert made["data"] == {"exact": 0.1, "whole": 3} and records.count("sample", actor=SYSTEM) == 1
