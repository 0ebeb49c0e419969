"""The server does not block: a request waiting on the database leaves every other request alone.

Real `metacrm serve` processes (SQLite and PostgreSQL) and real HTTP. A record held by another
transaction (a row lock on PostgreSQL, the write lock on SQLite) makes a PATCH wait; meanwhile
an unrelated GET, a static page and (PostgreSQL) an unrelated write are answered while the PATCH
is still waiting — that is an order, checked without timing. The other checks: the execution log
lines a server buffered are written when it stops; keep-alive requests to `serve --workers 2`
are not paced by delayed ACKs (TCP_NODELAY); a GET costs a small, constant number of statements.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from starlette.testclient import TestClient

from metacrm.engine.api.app import create_app
from metacrm.engine.automation.tables import execution_log
from metacrm.engine.config import Settings
from metacrm.engine import identity
from metacrm.engine.security import auth
from tests.conftest import install
from tests.servers import Serving

WAIT = 30.0  # the longest any one request may take in these tests (a bound, not a measurement)

DEAL = """
name: deal
label: {en: Deal}
fields:
  - {name: title, type: text, required: true}
  - {name: note, type: text}
permissions:
  rep: {create: true, read: own, edit: own}
automations:
  - name: noted
    trigger: {on: created}
    actions:
      - set: {note: "'noted'"}
"""


def setup(runtime) -> tuple[str, str, str]:
    """The object, an admin and a rep with API tokens; returns (admin token, rep token, rep id)."""
    install(runtime, DEAL)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        rep = identity.create_user(conn, "Rep", "rep@example.com", roles=["rep"])
        now = auth.utcnow()
        return auth.create_token(conn, admin.id, "t", now), auth.create_token(conn, rep.id, "t", now), rep.id


@pytest.fixture
def serving(tmp_path):
    started: list[Serving] = []

    def start(db_url: str, *extra: str, env: dict[str, str] | None = None) -> Serving:
        server = Serving(db_url, tmp_path / f"server{len(started)}.log", *extra, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def hold_the_record(runtime, record_id: str):
    """A connection in a transaction that holds `record_id` (PostgreSQL: its row lock; SQLite:
    the database's write lock, which every write needs)."""
    conn = runtime.db.engine.connect()
    conn.begin()  # SQLite: BEGIN IMMEDIATE (engine.storage.database), so the write lock is taken now
    table = runtime.tables()["deal"]
    conn.execute(sa.update(table).where(table.c.id == record_id).values(note="held"))
    return conn


def patch_is_waiting(runtime, held) -> None:
    """Until the server's PATCH waits for the lock (PostgreSQL tells; SQLite: give it a moment)."""
    if not runtime.db.is_postgresql:
        time.sleep(1.0)
        return
    deadline = time.monotonic() + WAIT
    with runtime.db.engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar()
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail("the PATCH never waited for the lock")


def test_a_request_waiting_on_a_lock_does_not_hold_up_unrelated_requests(runtime, db_url, serving):
    admin, rep, _ = setup(runtime)
    server = serving(db_url)
    server.wait_until_answering(admin)
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx2.Client(base_url=server.url, timeout=WAIT, headers=headers) as client:
        blocked = client.post("/api/v1/records/deal", json={"title": "Blocked"}).json()["id"]
        other = client.post("/api/v1/records/deal", json={"title": "Other"}).json()["id"]
    held = hold_the_record(runtime, blocked)
    outcome: dict[str, object] = {}

    def patch() -> None:
        with httpx2.Client(base_url=server.url, timeout=WAIT, headers=headers) as own:
            outcome["patch"] = own.patch(f"/api/v1/records/deal/{blocked}", json={"title": "Changed"})

    writer = threading.Thread(target=patch)
    try:
        writer.start()
        patch_is_waiting(runtime, held)
        with httpx2.Client(base_url=server.url, timeout=WAIT, headers=headers) as client:
            got = client.get(f"/api/v1/records/deal/{other}")
            page = client.get("/api/v1/docs")
            listed = client.get("/api/v1/meta/objects")
            assert "patch" not in outcome, "the PATCH ended before the lock was released"
            assert got.status_code == 200 and got.json()["title"] == "Other"
            assert page.status_code == 200 and listed.status_code == 200
            if runtime.db.is_postgresql:  # row locks: a write to another record goes ahead too
                wrote = client.patch(f"/api/v1/records/deal/{other}", json={"title": "Other, changed"})
                assert wrote.status_code == 200, wrote.text
                assert "patch" not in outcome
    finally:
        held.rollback()
        held.close()
        writer.join(WAIT)
    response = outcome["patch"]
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Changed"


def test_buffered_execution_log_lines_are_written_when_the_server_stops(runtime, db_url, serving):
    admin, _, _ = setup(runtime)
    server = serving(db_url)
    server.wait_until_answering(admin)
    with httpx2.Client(base_url=server.url, timeout=WAIT, headers={"Authorization": f"Bearer {admin}"}) as client:
        made = client.post("/api/v1/records/deal", json={"title": "Logged"})
    assert made.status_code == 201 and made.json()["note"] == "noted", made.text
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn ends by re-raising the signal
    with runtime.db.read() as conn:
        lines = conn.execute(sa.select(execution_log.c.rule, execution_log.c.result)
                             .where(execution_log.c.record_id == made.json()["id"])).all()
    assert [tuple(line) for line in lines] == [("noted", "matched")]


def test_keep_alive_requests_to_several_workers_are_not_paced_by_delayed_acks(runtime, db_url, serving):
    if not runtime.db.is_postgresql:
        pytest.skip("several server processes need PostgreSQL")
    admin, _, _ = setup(runtime)
    server = serving(db_url, "--workers", "2")
    server.wait_until_answering(admin)
    with httpx2.Client(base_url=server.url, timeout=WAIT, headers={"Authorization": f"Bearer {admin}"}) as client:
        client.get("/api/v1/meta/objects")  # the connection is open and the caches are warm
        started = time.monotonic()
        for _ in range(20):
            assert client.get("/api/v1/meta/objects").status_code == 200
        elapsed = time.monotonic() - started
    # with Nagle's algorithm on, each response waits ~40 ms for the client's delayed ACK: >= 0.8 s
    assert elapsed < 0.6, f"20 keep-alive requests took {elapsed:.2f} s"


# caches warm for the whole test, however slow
@pytest.mark.parametrize("settings", [Settings(revision_check_seconds=60, auth_cache_seconds=60)], ids=["warm"])
def test_a_get_costs_a_small_constant_number_of_statements(runtime):
    _, rep, rep_id = setup(runtime)
    statements: list[str] = []
    event.listen(runtime.db.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))
    http = TestClient(create_app(runtime))
    headers = {"Authorization": f"Bearer {rep}"}
    made = http.post("/api/v1/records/deal", json={"title": "Mine"}, headers=headers).json()
    counts = []
    for _ in range(3):
        statements.clear()
        got = http.get(f"/api/v1/records/deal/{made['id']}", headers=headers)
        assert got.status_code == 200 and got.json()["owner"] == rep_id
        counts.append(len(statements))
    assert counts[1] == counts[2] and counts[2] <= 3, (counts, statements)


def eventually(check, bound: float = 10.0) -> None:
    """Until `check()` is true, for at most `bound` seconds (the documented delays are 1-2 s)."""
    deadline = time.monotonic() + bound
    while not check():
        assert time.monotonic() < deadline, "not in force within the bound"
        time.sleep(0.1)


def test_two_servers_with_their_caches_on_agree_within_the_documented_delays(runtime, db_url, serving):
    if not runtime.db.is_postgresql:
        pytest.skip("several server processes need PostgreSQL")
    admin, rep, _ = setup(runtime)
    a, b = serving(db_url), serving(db_url)
    for server in (a, b):
        server.wait_until_answering(admin)
    with httpx2.Client(base_url=a.url, timeout=WAIT) as on_a, httpx2.Client(base_url=b.url, timeout=WAIT) as on_b:
        made = on_a.post("/api/v1/auth/tokens", json={"name": "short"}, headers={"Authorization": f"Bearer {rep}"})
        assert made.status_code == 201, made.text
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        assert on_a.get("/api/v1/meta/objects", headers=token).status_code == 200  # both caches hold it now
        assert on_b.get("/api/v1/meta/objects", headers=token).status_code == 200
        assert on_a.delete(f"/api/v1/auth/tokens/{made.json()['id']}", headers=token).status_code == 204
        assert on_a.get("/api/v1/meta/objects", headers=token).status_code == 401  # at once where revoked
        eventually(lambda: on_b.get("/api/v1/meta/objects", headers=token).status_code == 401)

        admin_headers = {"Authorization": f"Bearer {admin}"}
        before = on_b.get("/api/v1/meta/objects", headers=admin_headers).json()["revision"]
        install(runtime, DEAL.replace("permissions:", "  - {name: region, type: text}\npermissions:"))
        for client in (on_a, on_b):
            eventually(lambda: client.get("/api/v1/meta/objects", headers=admin_headers).json()["revision"]
                       == before + 1)
            fields = client.get("/api/v1/meta/objects/deal", headers=admin_headers).json()["fields"]
            assert "region" in [f["name"] for f in fields]
