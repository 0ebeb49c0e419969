"""A list cursor continues only the list it came from.

A cursor names a position in one ordering of one filtered, searched list. Used with a
different sort, filter, search or object it would silently give a wrong or empty page, so
it is refused as a query error (422 over HTTP); so is a garbled or forged cursor. The page
size may change between pages.
"""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.records.query import Query, QueryError
from metacrm.engine.security import auth
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

DEAL = """
name: deal
fields:
  - {name: name, type: text, searchable: true}
  - {name: amount, type: currency}
  - {name: stage, type: picklist, options: [new, won, lost]}
"""
LEAD = """
name: lead
fields:
  - {name: name, type: text, searchable: true}
  - {name: amount, type: currency}
  - {name: stage, type: picklist, options: [new, won, lost]}
"""
FIRST = Query(filter=[["stage", "ne", "lost"]], sort=("-amount", "name"), search="deal", limit=2)


@pytest.fixture
def deals(runtime, records):
    install(runtime, DEAL, LEAD)
    for i in range(7):
        row = {"name": f"deal {i}", "amount": f"{i}00.{i}5", "stage": ("new", "won", "lost")[i % 3]}
        records.create("deal", row, actor=SYSTEM)
        records.create("lead", row, actor=SYSTEM)
    return records


def encoded(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_continues_its_own_list_whatever_the_page_size(deals):
    cursor = deals.list("deal", FIRST, actor=SYSTEM).next_cursor
    rest = deals.list("deal", Query(**{**FIRST.__dict__, "cursor": cursor, "limit": 10}), actor=SYSTEM).records
    assert [r["name"] for r in rest] == ["deal 3", "deal 1", "deal 0"]


@pytest.mark.parametrize("change", [
    {"sort": ("amount", "name")},
    {"sort": ("-amount",)},
    {"sort": ("-amount", "-name")},
    {"filter": [["stage", "eq", "new"]]},
    {"filter": None},
    {"search": "deal 1"},
    {"search": None},
])
def test_a_cursor_used_with_another_sort_filter_or_search_is_refused(deals, change):
    cursor = deals.list("deal", FIRST, actor=SYSTEM).next_cursor
    query = Query(**{**FIRST.__dict__, **change, "cursor": cursor})
    with pytest.raises(QueryError) as caught:
        deals.list("deal", query, actor=SYSTEM)
    assert "another list" in str(caught.value.errors[0].message)


def test_a_cursor_used_on_another_object_is_refused(deals):
    cursor = deals.list("deal", FIRST, actor=SYSTEM).next_cursor
    with pytest.raises(QueryError):
        deals.list("lead", Query(**{**FIRST.__dict__, "cursor": cursor}), actor=SYSTEM)


def garbled(good: str) -> list[str]:
    body = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    k = body["k"]
    return [
        "garbage!", "====", "e30", encoded([1, 2]), encoded(None), encoded("text"), encoded({"v": body["v"]}),
        encoded({"k": k, "v": body["v"][:1]}), encoded({"k": k, "v": "x"}),
        encoded({"k": k, "v": ["not a number", "deal 1", body["v"][2]]}),
        encoded({"k": k, "v": ["NaN", "deal 1", body["v"][2]]}),
        encoded({"k": k, "v": ["1e-999999999999999999", "deal 1", body["v"][2]]}),
        encoded({"k": k, "v": [body["v"][0], "deal 1", "not-an-id"]}),
        encoded({"k": k, "v": [{"a": 1}, [1], 2]}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(), base64.urlsafe_b64encode(b"[" * 100000).decode(),
        "A" * 100_000,
    ]


def test_garbled_or_forged_cursors_are_refused(deals):
    good = deals.list("deal", FIRST, actor=SYSTEM).next_cursor
    for cursor in garbled(good):
        with pytest.raises(QueryError):
            deals.list("deal", Query(**{**FIRST.__dict__, "cursor": cursor}), actor=SYSTEM)


def test_over_http_a_foreign_or_garbled_cursor_is_a_422(deals, runtime):
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        token = auth.create_token(conn, admin.id, "t", auth.utcnow())
    client, headers = TestClient(create_app(runtime)), {"Authorization": f"Bearer {token}"}
    params = {"filter": '[["stage", "ne", "lost"]]', "sort": "-amount,name", "search": "deal", "limit": "2"}
    first = client.get("/api/v1/records/deal", params=params, headers=headers).json()
    second = client.get(first["next"], headers=headers)
    assert second.status_code == 200 and [r["name"] for r in second.json()["records"]] == ["deal 3", "deal 1"]
    for change in ({"sort": "amount"}, {"filter": '[["stage", "eq", "won"]]'}, {"search": "0"}):
        reused = client.get("/api/v1/records/deal", params={**params, **change, "cursor": first["next_cursor"]},
                            headers=headers)
        assert reused.status_code == 422 and reused.headers["content-type"] == "application/problem+json"
        assert reused.json()["errors"][0]["field"] == "cursor"
    for cursor in [c for c in garbled(first["next_cursor"]) if len(c) < 4000]:  # (URLs have a length limit)
        response = client.get("/api/v1/records/deal", params={**params, "cursor": cursor}, headers=headers)
        assert response.status_code in (400, 422), cursor
