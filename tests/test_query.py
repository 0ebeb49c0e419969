"""Listing records: filters, and/or, sort with nulls, keyset pages, search — all in SQL, on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import Query, QueryError
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

CONTACT = """
name: contact
title_field: last_name
fields:
  - {name: first_name, type: text}
  - {name: last_name, type: text, required: true}
  - {name: email, type: email}
  - {name: score, type: integer}
  - {name: revenue, type: decimal, scale: 2}
  - {name: tier, type: picklist, options: [gold, silver, bronze]}
  - {name: tags, type: multi_picklist, options: [vip, press, partner]}
  - {name: met_on, type: date}
  - {name: active, type: boolean}
"""

TODAY = date(2026, 11, 23)
ACTOR = Actor(clock=FixedClock(datetime(2026, 11, 23, 10, tzinfo=timezone.utc)))


@pytest.fixture
def people(runtime, records):
    install(runtime, CONTACT)
    rows = [
        {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "score": 90, "revenue": "100.50",
         "tier": "gold", "tags": ["vip"], "met_on": str(TODAY), "active": True},
        {"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.mil", "score": 75, "revenue": "20",
         "tier": "silver", "tags": ["press", "partner"], "met_on": str(TODAY - timedelta(days=3)), "active": True},
        {"first_name": "Alan", "last_name": "Turing", "score": None, "tier": "bronze",
         "met_on": str(TODAY - timedelta(days=40)), "active": False},
        {"first_name": "Linus", "last_name": "Torvalds_100%", "score": 60, "tier": None, "active": False},
        {"first_name": "李", "last_name": "小龙", "email": "lee@example.cn", "score": 75, "tier": "gold", "tags": ["vip", "press"]},
    ]
    result = records.bulk_create("contact", rows, actor=ACTOR)
    assert result.written == 5
    return records


def names(page):
    return [r["last_name"] for r in page.records]


def listed(records, **kw):
    return sorted(names(records.list("contact", Query(limit=100, **kw), actor=ACTOR)))


@pytest.mark.parametrize("filter_, expected", [
    ([["tier", "eq", "gold"]], ["Lovelace", "小龙"]),
    ([["tier", "ne", "gold"]], ["Hopper", "Torvalds_100%", "Turing"]),
    ([["score", "gt", 70]], ["Hopper", "Lovelace", "小龙"]),
    ([["score", "le", "60"]], ["Torvalds_100%"]),
    ([["score", "between", [61, 80]]], ["Hopper", "小龙"]),
    ([["revenue", "ge", "50"]], ["Lovelace"]),
    ([["tier", "in", ["silver", "bronze"]]], ["Hopper", "Turing"]),
    ([["tier", "not_in", ["gold"]]], ["Hopper", "Torvalds_100%", "Turing"]),
    ([["email", "contains", "EXAMPLE"]], ["Lovelace", "小龙"]),
    ([["last_name", "contains", "100%"]], ["Torvalds_100%"]),
    ([["last_name", "contains", "_"]], ["Torvalds_100%"]),
    ([["first_name", "starts_with", "a"]], ["Lovelace", "Turing"]),
    ([["score", "is_null", True]], ["Turing"]),
    ([["tier", "is_null", False], ["active", "eq", False]], ["Turing"]),
    ([["tags", "contains", "press"]], ["Hopper", "小龙"]),
    ([["tags", "not_in", ["vip"]]], ["Hopper", "Torvalds_100%", "Turing"]),
    ([["met_on", "last_n_days", 7]], ["Hopper", "Lovelace"]),
    ([["met_on", "today"]], ["Lovelace"]),
    ([["met_on", "this_month"]], ["Hopper", "Lovelace"]),
    ([["created_at", "today"]], ["Hopper", "Lovelace", "Torvalds_100%", "Turing", "小龙"]),
    ({"or": [["tier", "eq", "bronze"], {"and": [["score", "eq", 75], ["tier", "eq", "gold"]]}]}, ["Turing", "小龙"]),
    ({"not": ["active", "eq", True]}, ["Torvalds_100%", "Turing", "小龙"]),
    ({"field": "score", "op": "lt", "value": 70}, ["Torvalds_100%"]),
])
def test_filters(people, filter_, expected):
    assert listed(people, filter=filter_) == expected


@pytest.mark.parametrize("bad", [
    [["nope", "eq", 1]],
    [["score", "eq", "ninety"]],
    [["score", "contains", "9"]],
    [["tier", "between", ["a"]]],
    [["met_on", "last_n_days", "x"]],
    [["score", "drop table", 1]],
    "score = 1",
])
def test_invalid_filters_are_clear_errors(people, bad):
    with pytest.raises(QueryError):
        people.list("contact", Query(filter=bad), actor=SYSTEM)


def test_sql_looking_values_are_just_values(people):
    assert listed(people, filter=[["last_name", "eq", "x' OR '1'='1"]]) == []
    assert listed(people, search="'; DROP TABLE contact; --") == []
    assert people.count("contact", actor=SYSTEM) == 5


def test_search_across_title_and_searchable_fields(people):
    assert listed(people, search="navy") == ["Hopper"]  # email is searchable by default
    assert listed(people, search="tur") == ["Turing"]
    assert listed(people, search="小") == ["小龙"]


@pytest.mark.parametrize("sort, expected", [
    (("score", "last_name"), ["Torvalds_100%", "Hopper", "小龙", "Lovelace", "Turing"]),
    (("-score", "last_name"), ["Turing", "Lovelace", "Hopper", "小龙", "Torvalds_100%"]),
    (("tier", "-last_name"), ["小龙", "Lovelace", "Hopper", "Turing", "Torvalds_100%"]),
])
def test_sort_puts_nulls_last_ascending_and_first_descending(people, sort, expected):
    assert names(people.list("contact", Query(sort=sort, limit=10), actor=ACTOR)) == expected


@pytest.mark.parametrize("sort", [("score",), ("-score",), ("tier", "-first_name"), ("-created_at",), ("last_name",),
                                  ("-revenue",)])
def test_keyset_pages_cover_every_row_once(people, sort):
    full = names(people.list("contact", Query(sort=sort, limit=100), actor=ACTOR))
    seen, cursor = [], None
    while True:
        page = people.list("contact", Query(sort=sort, limit=2, cursor=cursor), actor=ACTOR)
        seen += names(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == full and len(seen) == 5


def test_cursor_from_another_sort_is_refused(people):
    cursor = people.list("contact", Query(sort=("score",), limit=1), actor=SYSTEM).next_cursor
    with pytest.raises(QueryError):
        people.list("contact", Query(sort=("score", "tier"), limit=1, cursor=cursor), actor=SYSTEM)
    with pytest.raises(QueryError):
        people.list("contact", Query(limit=1, cursor="garbage!"), actor=SYSTEM)


def test_field_selection(people):
    page = people.list("contact", Query(fields=("last_name",), limit=1), actor=SYSTEM)
    assert set(page.records[0]) == {"id", "version", "last_name"}  # the version, to update what was read
    with pytest.raises(QueryError):
        people.list("contact", Query(fields=("password",)), actor=SYSTEM)
