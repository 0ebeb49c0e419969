"""The permission matrix through the REST API: every role sees exactly its records and never a hidden
field — in reads, lists, searches, metadata and OpenAPI — on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from metacrm.engine.api import create_app
from metacrm.engine.security import auth
from tests.test_permissions import EXPECTED_READ, world  # noqa: F401  (the seeded world fixture)

HIDDEN = {"R1": {"margin", "margin_amount"}, "R2": {"margin", "margin_amount"}, "Aud": {"margin", "margin_amount", "notes"}}


@pytest.fixture
def client(runtime, world):  # noqa: F811
    users, actors, deals = world
    with runtime.db.begin() as conn:
        tokens = {name: auth.create_token(conn, user_id, "t", auth.utcnow()) for name, user_id in users.items()}
    return TestClient(create_app(runtime)), tokens, deals


@pytest.mark.parametrize("who", sorted(EXPECTED_READ))
def test_every_role_sees_exactly_its_records_and_fields(client, who):
    http, tokens, deals = client
    headers = {"Authorization": f"Bearer {tokens[who]}"}
    listed = http.get("/api/v1/records/deal", params={"limit": 100}, headers=headers)
    assert listed.status_code == 200
    assert sorted(r["name"] for r in listed.json()["records"]) == EXPECTED_READ[who]
    searched = http.get("/api/v1/records/deal", params={"search": "deal", "limit": 100}, headers=headers).json()
    assert sorted(r["name"] for r in searched["records"]) == EXPECTED_READ[who]
    hidden = HIDDEN.get(who, set())
    bodies = [listed.text, json.dumps(searched)]
    for owner, record_id in deals.items():
        response = http.get(f"/api/v1/records/deal/{record_id}", headers=headers)
        visible = any(n.startswith(owner if owner != "pool" else "Pool") for n in EXPECTED_READ[who])
        assert response.status_code == (200 if visible else 404)
        bodies.append(response.text)
    bodies.append(http.get("/api/v1/meta/objects/deal", headers=headers).text)
    bodies.append(json.dumps(http.get("/api/v1/openapi.json", headers=headers).json()["components"]))
    for body in bodies:
        for name in hidden:
            assert f'"{name}"' not in body
        if "notes" in hidden:
            assert "secret note" not in body
    if hidden:
        probe = http.get("/api/v1/records/deal", params={"filter": '[["margin", "gt", 0]]'}, headers=headers)
        assert probe.status_code == 422 and "30" not in probe.json()["detail"]
