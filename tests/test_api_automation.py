"""Automation over HTTP on SQLite and PostgreSQL: manual rules, approvals, the public intake form."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from engine.api import create_app
from engine.security import auth, identity
from tests.conftest import install

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
    assert records.get("lead", made.json()["id"])["status"] == "hot"
    assert client.post("/api/v1/intake/lead", json={"name": "x", "score": 99}).status_code == 422
    assert client.post("/api/v1/intake/lead", json={"email": "bad"}).status_code == 422
    assert records.count("lead") == 1


def test_manual_rule_over_http(api, records):
    client, tokens = api
    a = client.post("/api/v1/records/lead", json={"name": "A", "score": 80}, headers=h(tokens["rep"])).json()
    b = client.post("/api/v1/records/lead", json={"name": "B", "score": 10}, headers=h(tokens["rep"])).json()
    ran = client.post("/api/v1/records/lead/rules/mark_hot", json={"ids": [a["id"], b["id"]]}, headers=h(tokens["rep"]))
    assert ran.json() == {"rule": "lead.mark_hot", "matched": 1, "records": 2,
                          "results": [{"id": a["id"], "matched": True}, {"id": b["id"], "matched": False}]}
    assert [records.get("lead", i)["status"] for i in (a["id"], b["id"])] == ["hot", "new"]
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
