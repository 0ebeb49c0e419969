"""Two real `metacrm serve` processes on one PostgreSQL database: the API is stateless and scales out.

The servers are started as `python -m engine.cli.main --database URL serve --port N` (uvicorn,
one worker each). A metadata change, a permissions change and a role revocation made while
they run are in force on the very next request to either of them, and two clients updating
one record through different servers with the same ETag get one 200 and one 412.
Metadata is applied with the Runtime of this test process (a third process); every wait is
bounded and the servers are stopped at the end. The servers run with their per-process caches
off (METACRM_REVISION_CHECK_SECONDS=0, METACRM_AUTH_CACHE_SECONDS=0), which is what makes
"the very next request" hold.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa

from metacrm.engine.runtime import Runtime
from metacrm.engine import identity
from metacrm.engine.security import auth
from tests.conftest import install
from tests.servers import REQUEST_TIMEOUT, Serving


DEAL = """
name: deal
label: {en: Deal}
fields:
  - {name: title, type: text, required: true}
  - {name: amount, type: integer}
  - {name: margin, type: integer}
permissions:
  rep: {create: true, read: all, edit: all}
"""
DEAL_WITH_REGION = DEAL.replace("permissions:", "  - {name: region, type: text}\npermissions:")
DEAL_REP_RESTRICTED = DEAL_WITH_REGION.replace("rep: {create: true, read: all, edit: all}",
                                               "rep: {create: true, read: all, edit: none, fields: {margin: hidden}}")


def start_server(name: str, db_url: str, log: Path) -> Serving:
    # "on the next request": the per-process caches (revision check, callers) are turned off here
    return Serving(db_url, log, env={"METACRM_REVISION_CHECK_SECONDS": "0", "METACRM_AUTH_CACHE_SECONDS": "0"},
                   name=name)


@dataclass
class Cluster:
    runtime: Runtime
    a: Serving
    b: Serving
    tokens: dict[str, str]
    users: dict[str, str]


@pytest.fixture(scope="module")
def cluster(pg_database, tmp_path_factory):
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    runtime = Runtime.open(pg_database)
    install(runtime, DEAL)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        rep = identity.create_user(conn, "Rep", "rep@example.com", roles=["rep"])
        now = auth.utcnow()
        tokens = {"admin": auth.create_token(conn, admin.id, "t", now), "rep": auth.create_token(conn, rep.id, "t", now)}
    logs = tmp_path_factory.mktemp("servers")
    servers = []
    try:
        for name in ("A", "B"):
            servers.append(start_server(name, pg_database, logs / f"server_{name}.log"))
        for server in servers:
            server.wait_until_answering(tokens["admin"])
        yield Cluster(runtime, servers[0], servers[1], tokens, {"admin": admin.id, "rep": rep.id})
    finally:
        for server in servers:
            server.stop()
        runtime.close()


def field_names(client: httpx2.Client, object_name: str) -> list[str]:
    response = client.get(f"/api/v1/meta/objects/{object_name}")
    assert response.status_code == 200, response.text
    return [f["name"] for f in response.json()["fields"]]


def test_two_servers_answer_from_one_database(cluster):
    a, b = cluster.a.client(cluster.tokens["admin"]), cluster.b.client(cluster.tokens["admin"])
    made = a.post("/api/v1/records/deal", json={"title": "Made on A", "amount": 5})
    assert made.status_code == 201, made.text
    seen = b.get(f"/api/v1/records/deal/{made.json()['id']}")
    assert seen.status_code == 200 and seen.json()["title"] == "Made on A"
    assert seen.headers["etag"] == made.headers["etag"]


def test_a_metadata_change_is_in_force_on_the_next_request_to_the_other_server(cluster):
    a, b = cluster.a.client(cluster.tokens["admin"]), cluster.b.client(cluster.tokens["admin"])
    assert "region" not in field_names(b, "deal")  # B has served the old revision
    before = a.get("/api/v1/meta/objects").json()["revision"]
    install(cluster.runtime, DEAL_WITH_REGION)
    assert "region" in field_names(b, "deal")  # B's very next request
    assert b.get("/api/v1/meta/objects").json()["revision"] == before + 1
    made = b.post("/api/v1/records/deal", json={"title": "With a region", "region": "EMEA"})
    assert made.status_code == 201, made.text
    assert made.json()["region"] == "EMEA"
    spec = b.get("/api/v1/openapi.json").json()
    assert "region" in spec["components"]["schemas"]["deal"]["properties"]
    # and A, which did not apply the change either, agrees on its next request
    assert a.get(f"/api/v1/records/deal/{made.json()['id']}").json()["region"] == "EMEA"


def test_a_permission_change_is_enforced_on_the_next_request_to_the_other_server(cluster):
    admin_a = cluster.a.client(cluster.tokens["admin"])
    rep_b = cluster.b.client(cluster.tokens["rep"])
    record = admin_a.post("/api/v1/records/deal", json={"title": "Margins", "margin": 42}).json()
    got = rep_b.get(f"/api/v1/records/deal/{record['id']}")
    assert got.status_code == 200 and got.json()["margin"] == 42
    edited = rep_b.patch(f"/api/v1/records/deal/{record['id']}", json={"amount": 1})
    assert edited.status_code == 200, edited.text

    install(cluster.runtime, DEAL_REP_RESTRICTED)  # rep: no edits, margin hidden

    got = rep_b.get(f"/api/v1/records/deal/{record['id']}")
    assert got.status_code == 200 and "margin" not in got.json()
    assert "margin" not in field_names(rep_b, "deal")
    refused = rep_b.patch(f"/api/v1/records/deal/{record['id']}", json={"amount": 2})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert admin_a.get(f"/api/v1/records/deal/{record['id']}").json()["amount"] == 1
    # the admin still sees everything, through either server
    assert cluster.b.client(cluster.tokens["admin"]).get(f"/api/v1/records/deal/{record['id']}").json()["margin"] == 42


def test_a_revoked_role_is_enforced_on_the_next_request_to_the_other_server(cluster):
    rep_a, rep_b = cluster.a.client(cluster.tokens["rep"]), cluster.b.client(cluster.tokens["rep"])
    record = rep_a.post("/api/v1/records/deal", json={"title": "Mine"})
    assert record.status_code == 201, record.text
    assert rep_b.get(f"/api/v1/records/deal/{record.json()['id']}").status_code == 200
    with cluster.runtime.db.begin() as conn:
        identity.revoke_role(conn, cluster.users["rep"], "rep")
    try:
        assert rep_b.get(f"/api/v1/records/deal/{record.json()['id']}").status_code == 404
        assert rep_b.get("/api/v1/meta/objects/deal").status_code == 404
        refused = rep_a.post("/api/v1/records/deal", json={"title": "Not any more"})
        assert refused.status_code == 403, refused.text
    finally:
        with cluster.runtime.db.begin() as conn:
            identity.grant_role(conn, cluster.users["rep"], "rep")
    assert rep_b.get(f"/api/v1/records/deal/{record.json()['id']}").status_code == 200


def test_two_clients_with_the_same_etag_through_two_servers_one_wins(cluster):
    a, b = cluster.a.client(cluster.tokens["admin"]), cluster.b.client(cluster.tokens["admin"])
    record = a.post("/api/v1/records/deal", json={"title": "Contended", "amount": 0}).json()
    url = f"/api/v1/records/deal/{record['id']}"
    for round_ in range(8):
        etag = a.get(url).headers["etag"]
        start = threading.Barrier(2, timeout=REQUEST_TIMEOUT)
        results: dict[str, httpx2.Response] = {}

        def update(name: str, client: httpx2.Client, amount: int) -> None:
            start.wait()
            results[name] = client.patch(url, json={"amount": amount}, headers={"If-Match": etag})

        threads = [threading.Thread(target=update, args=("A", a, 1000 + round_)),
                   threading.Thread(target=update, args=("B", b, 2000 + round_))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT * 2)
        assert set(results) == {"A", "B"}, "an update did not finish in time"
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 412], {k: (r.status_code, r.text) for k, r in results.items()}
        winner = next(name for name, r in results.items() if r.status_code == 200)
        loser = results["B" if winner == "A" else "A"]
        assert loser.headers["content-type"] == "application/problem+json"
        current = b.get(url)
        assert current.json()["amount"] == (1000 if winner == "A" else 2000) + round_
        assert current.headers["etag"] == results[winner].headers["etag"]
        assert loser.json()["current_version"] == current.json()["version"]


def test_the_servers_stop_cleanly_and_logged_no_errors(cluster):
    for server in (cluster.a, cluster.b):
        server.stop()
        assert server.process.returncode is not None
        output = server.output()
        assert "Traceback" not in output and "unhandled error" not in output, output
