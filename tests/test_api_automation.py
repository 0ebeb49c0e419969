"""Automation over HTTP on SQLite and PostgreSQL: manual rules, approvals, the public intake form."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from metacrm.engine.api import create_app
from metacrm.engine.config import Settings
from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.security import auth
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

LEAD = """
name: lead
fields:
  - {name: name, type: text, required: true}
  - {name: email, type: email}
  - {name: score, type: integer}
  - {name: status, type: picklist, options: [new, hot], default: new}
  - {name: discount, type: percent}
intake:
  fields: [name, email]
automations:
  - name: web_leads_are_hot
    trigger: {on: inbound}
    actions: [{set: {status: "'hot'"}}]
  - name: mark_hot
    trigger: {on: manual}
    condition: "score > 50"
    actions: [{set: {status: "'hot'"}}]
approval_processes:
  - name: discount
    entry_condition: "discount > 10"
    steps: [{name: manager, approvers: [manager]}]
"""


@pytest.fixture
def api(runtime):
    install(runtime, LEAD)
    with runtime.db.begin() as conn:
        boss = identity.create_user(conn, "Boss", "boss@example.com")
        rep = identity.create_user(conn, "Rep", "rep@example.com", manager=boss.id)
        now = auth.utcnow()
        tokens = {"boss": auth.create_token(conn, boss.id, "t", now), "rep": auth.create_token(conn, rep.id, "t", now)}
    return TestClient(create_app(runtime)), tokens


def h(token):
    return {"Authorization": f"Bearer {token}"}


def test_public_intake_fires_inbound_rules_and_accepts_only_listed_fields(api, records):
    client, _ = api
    made = client.post("/api/v1/intake/lead", json={"name": "Web visitor", "email": "v@example.com"})
    assert made.status_code == 201
    assert records.get("lead", made.json()["id"], actor=SYSTEM)["status"] == "hot"
    assert client.post("/api/v1/intake/lead", json={"name": "x", "score": 99}).status_code == 422
    assert client.post("/api/v1/intake/lead", json={"email": "bad"}).status_code == 422
    assert records.count("lead", actor=SYSTEM) == 1


def test_manual_rule_over_http(api, records):
    client, tokens = api
    a = client.post("/api/v1/records/lead", json={"name": "A", "score": 80}, headers=h(tokens["rep"])).json()
    b = client.post("/api/v1/records/lead", json={"name": "B", "score": 10}, headers=h(tokens["rep"])).json()
    ran = client.post("/api/v1/records/lead/rules/mark_hot", json={"ids": [a["id"], b["id"]]}, headers=h(tokens["rep"]))
    assert ran.json() == {"rule": "lead.mark_hot", "matched": 1, "records": 2,
                          "results": [{"id": a["id"], "matched": True}, {"id": b["id"], "matched": False}]}
    assert [records.get("lead", i, actor=SYSTEM)["status"] for i in (a["id"], b["id"])] == ["hot", "new"]
    assert client.post("/api/v1/records/lead/rules/nope", json={"ids": [a["id"]]}, headers=h(tokens["rep"])).status_code == 404


def test_approvals_over_http(api, records):
    client, tokens = api
    lead = client.post("/api/v1/records/lead", json={"name": "A", "discount": 20}, headers=h(tokens["rep"])).json()
    submitted = client.post(f"/api/v1/records/lead/{lead['id']}/approvals", json={"process": "discount"},
                            headers=h(tokens["rep"]))
    assert submitted.status_code == 201
    approval = submitted.json()["approval"]
    locked = client.patch(f"/api/v1/records/lead/{lead['id']}", json={"discount": 50}, headers=h(tokens["rep"]))
    assert locked.status_code == 422 and locked.json()["errors"][0]["code"] == "locked"
    assert client.post(f"/api/v1/approvals/{approval}/approve", json={}, headers=h(tokens["rep"])).status_code == 422
    done = client.post(f"/api/v1/approvals/{approval}/approve", json={"comment": "ok"}, headers=h(tokens["boss"]))
    assert done.json()["status"] == "approved"
    history = client.get(f"/api/v1/records/lead/{lead['id']}/approvals", headers=h(tokens["rep"])).json()["history"]
    assert [e["decision"] for e in history] == ["submitted", "approved"]


@pytest.mark.parametrize("settings", [Settings(intake_per_hour=3)], ids=["3 an hour"])
def test_public_intake_is_limited_per_address_capped_in_size_and_audited(api, records, runtime):
    client, _ = api
    spammer = TestClient(client.app, client=("203.0.113.9", 40000))
    visitor = TestClient(client.app, client=("198.51.100.7", 40000))
    made = [spammer.post("/api/v1/intake/lead", json={"name": f"Spam {n}"}) for n in range(3)]
    assert [m.status_code for m in made] == [201, 201, 201]
    refused = spammer.post("/api/v1/intake/lead", json={"name": "Spam 4"})
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= 3600 and refused.json()["retry_after"] == wait
    assert visitor.post("/api/v1/intake/lead", json={"name": "Real visitor"}).status_code == 201  # others still can
    huge = visitor.post("/api/v1/intake/lead", json={"name": "x" * 100_000})
    assert huge.status_code == 413
    streamed = visitor.post("/api/v1/intake/lead", content=iter([b'{"name": "', b"y" * 100_000, b'"}']),
                            headers={"Content-Type": "application/json"})  # no Content-Length: counted as read
    assert streamed.status_code == 413
    assert records.count("lead", actor=SYSTEM) == 4
    with runtime.db.engine.connect() as conn:
        import sqlalchemy as sa

        from metacrm.engine.identity.audit import audit_log

        entries = conn.execute(sa.select(audit_log).where(audit_log.c.event == "intake").order_by(audit_log.c.id)).all()
    assert [(e.address, e.object, e.detail["channel"], e.user_id) for e in entries] == \
        [("203.0.113.9", "lead", "inbound", None)] * 3 + [("198.51.100.7", "lead", "inbound", None)]
    assert [e.record_id for e in entries] == [m.json()["id"] for m in made] + [entries[-1].record_id]
