"""Two writes of the same unique value at the same time: the loser gets the same clean field error
as when the value was taken long before — on insert and update, single and bulk, through the
service and the REST API, with real concurrent connections (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.security import auth
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

ITEM = """
name: item
fields:
  - {name: name, type: text}
  - {name: code, type: text, unique: true}
"""


@pytest.fixture
def items(runtime):
    install(runtime, ITEM)
    return runtime


def outcome(call):
    try:
        return call()
    except Exception as exc:  # the test looks at what was raised
        return exc


def race(runtime, first, second):
    """Run `first(conn)` in a transaction held open, start `second()` in another thread (its write
    waits for ours: on PostgreSQL we see it wait, on SQLite its BEGIN IMMEDIATE waits), commit,
    and return what `second` returned or raised."""
    result = {}
    with runtime.db.engine.connect() as conn:
        transaction = conn.begin()
        first(conn)
        thread = threading.Thread(target=lambda: result.update(value=outcome(second)))
        thread.start()
        _wait_until_blocked(runtime, thread)
        transaction.commit()
    thread.join(120)
    assert not thread.is_alive()
    return result["value"]


def _wait_until_blocked(runtime, thread: threading.Thread, bound: float = 60) -> None:
    if not runtime.db.is_postgresql:
        return
    deadline = time.monotonic() + bound
    with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                           " AND wait_event_type = 'Lock'")).scalar()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second write never waited for the first")


def plain_duplicate_error(records, value: str):
    """The error a duplicate gets when the value was committed long before."""
    with pytest.raises(ValidationFailed) as info:
        records.create("item", {"name": "late", "code": value}, actor=SYSTEM)
    return info.value.errors


def test_a_racing_insert_gets_the_not_unique_field_error(items, records):
    lost = race(items, lambda conn: records.create("item", {"name": "a", "code": "X-1"}, conn=conn, actor=SYSTEM),
                lambda: records.create("item", {"name": "b", "code": "X-1"}, actor=SYSTEM))
    assert isinstance(lost, ValidationFailed), lost
    assert lost.errors == plain_duplicate_error(records, "X-1")
    assert [(e.field, e.code) for e in lost.errors] == [("code", "not_unique")]
    assert records.count("item", actor=SYSTEM) == 1


def test_a_racing_update_gets_the_not_unique_field_error(items, records):
    other = records.create("item", {"name": "b", "code": "B-1"}, actor=SYSTEM)
    first = records.create("item", {"name": "a", "code": "A-1"}, actor=SYSTEM)
    lost = race(items, lambda conn: records.update("item", first["id"], {"code": "X-2"}, conn=conn, actor=SYSTEM),
                lambda: records.update("item", other["id"], {"code": "X-2"}, actor=SYSTEM))
    assert isinstance(lost, ValidationFailed), lost
    assert lost.errors == plain_duplicate_error(records, "X-2")
    assert records.get("item", other["id"], actor=SYSTEM)["code"] == "B-1"


def test_a_racing_bulk_create_reports_the_row_and_writes_the_others(items, records):
    lost = race(items, lambda conn: records.create("item", {"name": "a", "code": "X-3"}, conn=conn, actor=SYSTEM),
                lambda: records.bulk_create("item", [{"name": "b", "code": "X-3"}, {"name": "c", "code": "Y-3"}], actor=SYSTEM))
    assert not isinstance(lost, Exception), lost
    assert lost.written == 1 and lost.ids[0] is None and lost.ids[1] is not None
    assert lost.errors == {0: plain_duplicate_error(records, "X-3")}
    assert sorted(r["code"] for r in records.list("item", actor=SYSTEM).records) == ["X-3", "Y-3"]


def test_a_racing_bulk_update_reports_the_row_and_writes_the_others(items, records):
    a, b, c = (records.create("item", {"name": n, "code": f"{n}-4"}, actor=SYSTEM) for n in "abc")
    lost = race(items, lambda conn: records.update("item", a["id"], {"code": "X-4"}, conn=conn, actor=SYSTEM),
                lambda: records.bulk_update("item", [{"id": b["id"], "code": "X-4"}, {"id": c["id"], "name": "cc"}], actor=SYSTEM))
    assert not isinstance(lost, Exception), lost
    assert lost.ids == [None, c["id"]] and lost.errors == {0: plain_duplicate_error(records, "X-4")}
    assert records.get("item", b["id"], actor=SYSTEM)["code"] == "b-4" and records.get("item", c["id"], actor=SYSTEM)["name"] == "cc"


def test_a_racing_all_or_none_bulk_writes_nothing(items, records):
    lost = race(items, lambda conn: records.create("item", {"name": "a", "code": "X-5"}, conn=conn, actor=SYSTEM),
                lambda: records.bulk_create("item", [{"name": "c", "code": "Y-5"}, {"name": "b", "code": "X-5"}],
                                            all_or_none=True, actor=SYSTEM))
    assert isinstance(lost, ValidationFailed), lost
    assert lost.errors == plain_duplicate_error(records, "X-5")
    assert records.count("item", actor=SYSTEM) == 1


def test_racing_writes_through_the_api_get_422_with_the_field(items, records):
    with items.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        headers = {"Authorization": f"Bearer {auth.create_token(conn, admin.id, 't', auth.utcnow())}"}
    client = TestClient(create_app(items))
    other = records.create("item", {"name": "b", "code": "B-6"}, actor=SYSTEM)
    posted = race(items, lambda conn: records.create("item", {"name": "a", "code": "X-6"}, conn=conn, actor=SYSTEM),
                  lambda: client.post("/api/v1/records/item", json={"name": "b", "code": "X-6"}, headers=headers))
    patched = race(items, lambda conn: records.create("item", {"name": "a", "code": "Y-6"}, conn=conn, actor=SYSTEM),
                   lambda: client.patch(f"/api/v1/records/item/{other['id']}", json={"code": "Y-6"}, headers=headers))
    for response in (posted, patched):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert [(e["field"], e["code"]) for e in problem["errors"]] == [("code", "not_unique")]
        assert "constraint" not in response.text.lower() and "duplicate key" not in response.text.lower()

