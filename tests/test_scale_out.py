"""Scale-out on PostgreSQL: two `metacrm serve` processes and two `metacrm worker` processes on
one database, as docs/deployment.md describes, under concurrent writes and deliveries.

- no lost update: clients increment a counter through both servers with If-Match; every
  200 is one increment and one version, every other attempt is a 412;
- no duplicate delivery: records created concurrently through both servers each queue a
  webhook, and the two workers deliver every one exactly once;
- metadata changes seen by all: a metadata apply through one server's admin API is in force on
  the other server's next request, including the webhooks it queues.

PostgreSQL only: SQLite is one file on one machine (one writer at a time, no SKIP LOCKED, no
network access), so several servers and workers on it are not a supported deployment. Every
wait is bounded; the processes are stopped at the end.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2
import pytest
import sqlalchemy as sa

from metacrm.engine.automation.tables import outbox
from metacrm.engine.runtime import Runtime
from metacrm.engine import identity
from metacrm.engine.security import auth
from tests.conftest import install
from tests.receivers import WebhookReceiver, wait_for
from tests.servers import REQUEST_TIMEOUT, Serving
from tests.test_api_processes import start_server
from tests.test_worker_processes import start_worker

DEAL = """
name: deal
label: {en: Deal}
history: true
fields:
  - {name: title, type: text, required: true}
  - {name: counter, type: integer, default: 0}
automations:
  - name: announce
    trigger: {on: created}
    actions:
      - webhook: {url: "URL", timeout: 5, max_attempts: 3}
"""
DEAL_WITH_REGION = DEAL.replace("automations:", "  - {name: region, type: text}\nautomations:")

WRITERS_PER_SERVER = 3
ATTEMPTS_PER_WRITER = 6
CREATES_PER_SERVER = 20


@dataclass
class Fleet:
    runtime: Runtime
    servers: list[Serving]
    hook: WebhookReceiver
    token: str


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.skip(
    reason="scale-out is a PostgreSQL deployment: several processes on one SQLite file is not supported")),
    "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def fleet(backend, pg_database, tmp_path):
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    runtime = Runtime.open(pg_database)
    hook = WebhookReceiver().start()
    install(runtime, DEAL.replace("URL", hook.url))
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        token = auth.create_token(conn, admin.id, "t", auth.utcnow())
    servers, workers = [], []
    try:
        for name in ("A", "B"):
            servers.append(start_server(name, pg_database, tmp_path / f"server_{name}.log"))
        workers = [start_worker(pg_database, "--batch", "5") for _ in range(2)]
        for server in servers:
            server.wait_until_answering(token)
        yield Fleet(runtime, servers, hook, token)
    finally:
        for server in servers:
            server.stop()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)
        hook.stop()
        runtime.close()
    for server in servers:
        assert "Traceback" not in server.output(), server.output()


def increment(client: httpx2.Client, url: str) -> int:
    """Read the record, then write counter + 1 only if nobody wrote in between."""
    current = client.get(url)
    assert current.status_code == 200, current.text
    response = client.patch(url, json={"counter": current.json()["counter"] + 1},
                            headers={"If-Match": current.headers["etag"]})
    return response.status_code


def test_concurrent_updates_through_two_servers_lose_nothing(fleet):
    clients = [s.client(fleet.token) for s in fleet.servers]
    made = clients[0].post("/api/v1/records/deal", json={"title": "Contended"})
    assert made.status_code == 201, made.text
    url = f"/api/v1/records/deal/{made.json()['id']}"
    start = threading.Barrier(len(clients) * WRITERS_PER_SERVER, timeout=REQUEST_TIMEOUT)

    def writer(client: httpx2.Client) -> list[int]:
        start.wait()
        return [increment(client, url) for _ in range(ATTEMPTS_PER_WRITER)]

    with ThreadPoolExecutor(len(clients) * WRITERS_PER_SERVER) as pool:
        runs = [pool.submit(writer, c) for c in clients for _ in range(WRITERS_PER_SERVER)]
        statuses = Counter(s for run in runs for s in run.result(timeout=60))
    assert set(statuses) <= {200, 412}, statuses
    assert statuses[200] >= 1 and sum(statuses.values()) == len(runs) * ATTEMPTS_PER_WRITER
    final = clients[1].get(url).json()
    assert final["counter"] == statuses[200]  # every accepted write built on the one before it
    assert final["version"] == statuses[200] + 1
    with fleet.runtime.db.engine.connect() as conn:
        history = conn.execute(sa.text(
            "SELECT count(*) FROM metacrm_field_history WHERE record_id = :id AND field = 'counter'"),
            {"id": made.json()["id"]}).scalar_one()
    assert history == statuses[200]


def test_concurrent_creates_are_delivered_once_each_by_two_workers(fleet):
    clients = [s.client(fleet.token) for s in fleet.servers]

    def create(n: int) -> str:
        response = clients[n % 2].post("/api/v1/records/deal", json={"title": f"Deal {n}"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(2 * CREATES_PER_SERVER), timeout=60))
    assert wait_for(lambda: len(fleet.hook.received) >= len(ids) and all_done(fleet.runtime), timeout=45)
    received = list(fleet.hook.received)
    assert Counter(r["delivery"] for r in received).most_common(1)[0][1] == 1
    assert sorted(r["body"]["record"]["id"] for r in received) == sorted(ids)
    with fleet.runtime.db.engine.connect() as conn:
        attempts = conn.execute(sa.select(outbox.c.attempts)).scalars().all()
    assert attempts and set(attempts) == {1}


def test_a_metadata_apply_through_one_server_is_seen_by_the_other(fleet):
    a, b = (s.client(fleet.token) for s in fleet.servers)
    assert "region" not in fields_of(b)
    document = DEAL_WITH_REGION.replace("URL", fleet.hook.url)
    applied = a.post("/api/v1/admin/metadata/apply", json={"documents": {"deal.yaml": document}})
    assert applied.status_code == 200, applied.text
    assert "region" in fields_of(b)  # B's very next request
    made = b.post("/api/v1/records/deal", json={"title": "Regional", "region": "EMEA"})
    assert made.status_code == 201, made.text
    assert a.get(f"/api/v1/records/deal/{made.json()['id']}").json()["region"] == "EMEA"
    assert wait_for(lambda: any(r["body"]["record"]["id"] == made.json()["id"] for r in fleet.hook.received),
                    timeout=30)
    delivered = next(r for r in fleet.hook.received if r["body"]["record"]["id"] == made.json()["id"])
    assert delivered["body"]["record"]["region"] == "EMEA"


def fields_of(client: httpx2.Client) -> list[str]:
    response = client.get("/api/v1/meta/objects/deal")
    assert response.status_code == 200, response.text
    return [f["name"] for f in response.json()["fields"]]


def all_done(runtime: Runtime) -> bool:
    with runtime.db.engine.connect() as conn:
        statuses = conn.execute(sa.select(outbox.c.status)).scalars().all()
    return bool(statuses) and set(statuses) == {"done"}

