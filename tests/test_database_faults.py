"""No request waits on the database without bound, and a database that is busy or gone is a
503 problem (with Retry-After) that changes nothing, not a 500; the server recovers by itself
when the database is back. Real SQLite and PostgreSQL; the API over Starlette's TestClient."""

from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine.api.app import create_app
from metacrm.engine.config import Settings
from metacrm.engine.runtime import Runtime
from metacrm.engine import identity
from metacrm.engine.security import auth
from metacrm.engine.storage.database import Database, Timeouts
from tests.conftest import install
from tests.tcp_proxy import TCPProxy

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: grade, type: text}
"""


def api(runtime: Runtime) -> tuple[TestClient, dict]:
    install(runtime, ACCOUNT)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Ada", "ada@example.com", roles=["admin"])
        token = auth.create_token(conn, admin.id, "t", auth.utcnow())
    return TestClient(create_app(runtime)), {"Authorization": f"Bearer {token}"}


def assert_retry_later(answer, code: str, retry_after: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == retry_after
    body = answer.json()
    assert (body["status"], body["code"]) == (503, code) and "try again" in body["detail"]
    assert "Traceback" not in answer.text and "SELECT" not in answer.text and "UPDATE" not in answer.text


class RowLock:
    """Another connection holds the record (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the
    write lock) until released — or, as a bound, for a minute."""

    def __init__(self, url: str, table: sa.Table, record_id: str):
        self.db = Database(url)  # it only holds the lock; it never waits
        self.query = sa.select(table.c.id).where(table.c.id == record_id).with_for_update()
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self.db.begin() as conn:
            conn.execute(self.query).one()
            self.held.set()
            self.release.wait(60)

    def __enter__(self):
        self.thread.start()
        assert self.held.wait(30)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(70)
        self.db.dispose()


def test_a_write_waiting_on_a_locked_record_gets_a_503_and_changes_nothing(db_url):
    runtime = Runtime.open(db_url, settings=Settings(timeouts=Timeouts(lock=0.5)))
    try:
        client, headers = api(runtime)
        record = client.post("/api/v1/records/account", json={"name": "Acme"}, headers=headers).json()
        path = f"/api/v1/records/account/{record['id']}"
        with RowLock(db_url, runtime.tables()["account"], record["id"]):
            assert_retry_later(client.patch(path, json={"grade": "A"}, headers=headers), "busy", "1")
        got = client.get(path, headers=headers).json()
        assert (got["grade"], got["version"]) == (None, 1)
        assert client.patch(path, json={"grade": "A"}, headers=headers).status_code == 200
    finally:
        runtime.close()


def count_to(n: int):
    """A statement that takes a while: counting to n with a recursive query."""
    counter = sa.select(sa.literal(1).label("n")).cte("counter", recursive=True)
    counter = counter.union_all(sa.select(counter.c.n + 1).where(counter.c.n < n))
    return sa.select(sa.func.count()).select_from(counter)


def test_a_statement_that_runs_too_long_is_stopped(db_url):
    db = Database(db_url, timeouts=Timeouts(statement=0.2))
    try:
        with pytest.raises(sa.exc.OperationalError) as stopped:
            with db.read() as conn:
                conn.execute(count_to(10**8)).scalar()  # minutes without a bound
        from metacrm.engine.storage.database import unavailable_reason

        assert unavailable_reason(stopped.value) == "timeout"
        with db.read() as conn:  # the connection serves the next statement
            assert conn.execute(sa.select(sa.literal(7))).scalar() == 7
        with db.schema_change() as conn:  # a schema change is not cut short: a table rewrite may rightly take long
            assert conn.execute(count_to(2 * 10**6)).scalar() == 2 * 10**6
    finally:
        db.dispose()


@pytest.fixture
def outage(db_url, tmp_path):
    """(url, cut, restore): a database URL that the test can make unreachable and bring back.
    PostgreSQL is reached through a TCP proxy that stops (connections drop, new ones are refused);
    the SQLite file's folder is moved away (as when a mounted volume goes), and the pool's open
    handles — which would keep reading the moved file — are closed."""
    if db_url.startswith("sqlite"):
        folder = tmp_path / "data"
        folder.mkdir()
        away = tmp_path / "away"
        runtime_holder: list[Runtime] = []

        def cut():
            runtime_holder[0].db.dispose()
            os.rename(folder, away)

        yield f"sqlite:///{folder / 'crm.db'}", cut, lambda: os.rename(away, folder), runtime_holder
        return
    target = sa.engine.make_url(db_url)
    with TCPProxy(target.host, target.port or 5432) as proxy:
        url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield url, proxy.stop, proxy.start, []


def test_an_unreachable_database_answers_503_and_the_server_recovers(outage):
    url, cut, restore, holder = outage
    runtime = Runtime.open(url)
    holder.append(runtime)
    try:
        client, headers = api(runtime)
        assert client.post("/api/v1/records/account", json={"name": "Acme"}, headers=headers).status_code == 201
        cut()
        assert_retry_later(client.get("/api/v1/records/account", headers=headers), "unavailable", "5")
        assert_retry_later(client.post("/api/v1/records/account", json={"name": "Lost"}, headers=headers),
                           "unavailable", "5")
        restore()
        listed = client.get("/api/v1/records/account", headers=headers)
        assert listed.status_code == 200 and [r["name"] for r in listed.json()["records"]] == ["Acme"]
        assert client.post("/api/v1/records/account", json={"name": "Beta"}, headers=headers).status_code == 201
    finally:
        runtime.close()
