"""The REST API on SQLite and PostgreSQL: authentication, records, ETags, errors, metadata, OpenAPI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.security import auth
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

ACCOUNT = """
name: account
label: {en: Account, zh-CN: 客户}
fields:
  - {name: name, type: text, required: true, label: {en: Name, zh-CN: 名称}}
  - {name: grade, type: picklist, options: [A, B, C]}
  - {name: revenue, type: currency}
  - {name: secret_score, type: integer}
permissions:
  rep: {create: true, read: own, edit: own, fields: {secret_score: hidden}}
"""


@pytest.fixture
def api(runtime):
    install(runtime, ACCOUNT)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        rep = identity.create_user(conn, "Rep", "rep@example.com", roles=["rep"], language="zh-CN")
        auth.set_password(conn, admin.id, "correct horse")
        auth.set_password(conn, rep.id, "battery staple")
        now = auth.utcnow()
        tokens = {"admin": auth.create_token(conn, admin.id, "t", now), "rep": auth.create_token(conn, rep.id, "t", now)}
    client = TestClient(create_app(runtime))
    return client, tokens, {"admin": admin.id, "rep": rep.id}


def h(token: str, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


def test_crud_with_etags(api):
    client, tokens, _ = api
    made = client.post("/api/v1/records/account", json={"name": "Acme", "grade": "A", "revenue": "12.50"},
                       headers=h(tokens["admin"]))
    assert made.status_code == 201
    record = made.json()
    assert record["revenue"] == 12.5 and made.headers["etag"] == f'"{record["id"]}.1"'
    assert made.headers["location"] == f"/api/v1/records/account/{record['id']}"
    got = client.get(f"/api/v1/records/account/{record['id']}", headers=h(tokens["admin"]))
    assert got.json()["name"] == "Acme"
    etag = got.headers["etag"]
    assert client.get(f"/api/v1/records/account/{record['id']}",
                      headers=h(tokens["admin"], **{"If-None-Match": etag})).status_code == 304
    patched = client.patch(f"/api/v1/records/account/{record['id']}", json={"grade": "B"},
                           headers=h(tokens["admin"], **{"If-Match": etag}))
    assert patched.status_code == 200 and patched.json()["version"] == 2
    stale = client.patch(f"/api/v1/records/account/{record['id']}", json={"grade": "C"},
                         headers=h(tokens["admin"], **{"If-Match": etag}))
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_version"] == 2
    assert client.delete(f"/api/v1/records/account/{record['id']}", headers=h(tokens["admin"])).status_code == 204
    assert client.get(f"/api/v1/records/account/{record['id']}", headers=h(tokens["admin"])).status_code == 404


def test_concurrent_updates_with_the_same_etag(api):
    client, tokens, _ = api
    record = client.post("/api/v1/records/account", json={"name": "Acme"}, headers=h(tokens["admin"])).json()
    etag = f'"{record["id"]}.1"'
    first = client.patch(f"/api/v1/records/account/{record['id']}", json={"grade": "A"},
                         headers=h(tokens["admin"], **{"If-Match": etag}))
    second = client.patch(f"/api/v1/records/account/{record['id']}", json={"grade": "B"},
                          headers=h(tokens["admin"], **{"If-Match": etag}))
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    assert client.get(f"/api/v1/records/account/{record['id']}", headers=h(tokens["admin"])).json()["grade"] == "A"


def test_list_filters_sort_fields_and_next_links(api):
    client, tokens, _ = api
    for i, grade in enumerate("ABCAB"):
        client.post("/api/v1/records/account", json={"name": f"n{i}", "grade": grade, "revenue": i * 10},
                    headers=h(tokens["admin"]))
    page = client.get("/api/v1/records/account", params={"grade": "A", "sort": "-revenue", "fields": "name"},
                      headers=h(tokens["admin"])).json()
    assert [r["name"] for r in page["records"]] == ["n3", "n0"] and set(page["records"][0]) == {"id", "version", "name"}
    first = client.get("/api/v1/records/account", params={"limit": 2, "sort": "name"}, headers=h(tokens["admin"])).json()
    second = client.get(first["next"], headers=h(tokens["admin"])).json()
    assert [r["name"] for r in first["records"] + second["records"]] == ["n0", "n1", "n2", "n3"]
    complex_filter = '{"or": [["grade", "eq", "C"], ["revenue", "ge", 40]]}'
    names = [r["name"] for r in client.get("/api/v1/records/account", params={"filter": complex_filter, "sort": "name"},
                                            headers=h(tokens["admin"])).json()["records"]]
    assert names == ["n2", "n4"]


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", "/api/v1/records/account", {}, 401),
    ("get", "/api/v1/records/nothing", {"auth": True}, 404),
    ("post", "/api/v1/records/account", {"auth": True, "content": b"{not json", "ctype": "application/json"}, 400),
    ("post", "/api/v1/records/account", {"auth": True, "content": b"name=x", "ctype": "application/x-www-form-urlencoded"}, 415),
    ("post", "/api/v1/records/account", {"auth": True, "json": ["a"]}, 400),
    ("post", "/api/v1/records/account", {"auth": True, "json": {"name": "x", "colour": "red"}}, 422),
    ("post", "/api/v1/records/account", {"auth": True, "json": {"name": 5}}, 422),
    ("post", "/api/v1/records/account", {"auth": True, "json": {"name": "x", "revenue": "1e999"}}, 422),
    ("post", "/api/v1/records/account", {"auth": True, "content": b'{"name": "' + b"x" * 2_000_000 + b'"}',
                                         "ctype": "application/json"}, 413),
    ("get", "/api/v1/records/account", {"auth": True, "params": {"filter": "[[\"name\", \"eq\""}}, 400),
    ("get", "/api/v1/records/account", {"auth": True, "params": {"filter": "[[\"nope\", \"eq\", 1]]"}}, 422),
    ("get", "/api/v1/records/account", {"auth": True, "params": {"bogus": "1"}}, 400),
    ("get", "/api/v1/records/account", {"auth": True, "params": {"limit": "0"}}, 400),
    ("get", "/api/v1/records/account", {"auth": True, "params": {"name": "x' OR 1=1 --"}}, 200),
    ("get", "/api/v1/records/account/'; DROP TABLE account; --", {"auth": True}, 404),
])
def test_bad_requests_are_clear_4xx_and_write_nothing(api, runtime, records, method, path, kwargs, status):
    client, tokens, _ = api
    headers = h(tokens["admin"]) if kwargs.get("auth") else {}
    if "ctype" in kwargs:
        headers["Content-Type"] = kwargs["ctype"]
    response = getattr(client, method)(path, headers=headers, params=kwargs.get("params"),
                                       **({"json": kwargs["json"]} if "json" in kwargs else {}),
                                       **({"content": kwargs["content"]} if "content" in kwargs else {}))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == status and response.json()["detail"]
    assert records.count("account", actor=SYSTEM) == 0


def test_errors_in_the_callers_language(api):
    client, tokens, _ = api
    response = client.post("/api/v1/records/account", json={}, headers=h(tokens["rep"]))
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "name", "code": "required", "message": "名称 为必填项"}]
    response = client.post("/api/v1/records/account", json={}, headers=h(tokens["rep"], **{"Accept-Language": "en"}))
    assert response.json()["errors"][0]["message"] == "Name is required"


def test_tokens_expire_and_revoke(api, runtime):
    client, tokens, users = api
    with runtime.db.begin() as conn:
        expired = auth.create_token(conn, users["admin"], "old", auth.utcnow() - timedelta(days=2), timedelta(days=1))
    assert client.get("/api/v1/meta/objects", headers=h(expired)).status_code == 401
    assert client.get("/api/v1/meta/objects", headers=h("mcrm_made_up")).status_code == 401
    assert client.get("/api/v1/meta/objects", headers={"Authorization": "Basic abc"}).status_code == 401
    made = client.post("/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 1}, headers=h(tokens["rep"]))
    secret = made.json()["token"]
    assert client.get("/api/v1/meta/objects", headers=h(secret)).status_code == 200
    with runtime.db.engine.connect() as conn:
        import sqlalchemy as sa

        token_id = conn.execute(sa.select(auth.tokens.c.id).where(auth.tokens.c.name == "ci")).scalar_one()
        assert secret not in str(conn.execute(sa.select(auth.tokens)).all())  # stored hashed only
    assert client.delete(f"/api/v1/auth/tokens/{token_id}", headers=h(tokens["rep"])).status_code == 204
    assert client.get("/api/v1/meta/objects", headers=h(secret)).status_code == 401


def test_session_login_csrf_and_throttling(api):
    client, tokens, _ = api
    login = client.post("/api/v1/auth/login", json={"email": "rep@example.com", "password": "battery staple"})
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    csrf = login.json()["csrf_token"]
    assert client.get("/api/v1/records/account").status_code == 200  # the cookie is enough to read
    refused = client.post("/api/v1/records/account", json={"name": "x"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.post("/api/v1/records/account", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/records/account").status_code == 401
    other = TestClient(client.app)
    for _ in range(5):
        assert other.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": "nope"}).status_code == 401
    throttled = other.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": "correct horse"})
    assert throttled.status_code == 429


def test_hidden_fields_and_404_for_records_you_cannot_see(api):
    client, tokens, _ = api
    theirs = client.post("/api/v1/records/account", json={"name": "Admin's", "secret_score": 987654},
                         headers=h(tokens["admin"])).json()
    mine = client.post("/api/v1/records/account", json={"name": "Mine"}, headers=h(tokens["rep"])).json()
    assert "secret_score" not in mine
    assert client.get(f"/api/v1/records/account/{theirs['id']}", headers=h(tokens["rep"])).status_code == 404
    listed = client.get("/api/v1/records/account", headers=h(tokens["rep"])).json()["records"]
    assert [r["name"] for r in listed] == ["Mine"]
    written = client.patch(f"/api/v1/records/account/{mine['id']}", json={"secret_score": 1}, headers=h(tokens["rep"]))
    assert written.status_code == 422 and "987654" not in written.text
    meta = client.get("/api/v1/meta/objects/account", headers=h(tokens["rep"])).json()
    assert "secret_score" not in [f["name"] for f in meta["fields"]]
    spec = client.get("/api/v1/openapi.json", headers=h(tokens["rep"])).json()
    assert "secret_score" not in spec["components"]["schemas"]["account"]["properties"]
    assert "secret_score" in client.get("/api/v1/openapi.json", headers=h(tokens["admin"])).json()[
        "components"]["schemas"]["account"]["properties"]


def test_openapi_describes_the_live_metadata(api, runtime):
    client, tokens, _ = api
    spec = client.get("/api/v1/openapi.json", headers=h(tokens["admin"])).json()
    assert spec["openapi"] == "3.1.0"
    account = spec["components"]["schemas"]["account"]
    assert account["properties"]["grade"]["enum"] == ["A", "B", "C", None]
    assert spec["components"]["schemas"]["account_create"]["required"] == ["name"]
    assert "/api/v1/records/account/{id}" in spec["paths"]
    install(runtime, ACCOUNT.replace("permissions:", "  - {name: website, type: url}\npermissions:"))
    spec = client.get("/api/v1/openapi.json", headers=h(tokens["admin"])).json()
    assert spec["components"]["schemas"]["account"]["properties"]["website"]["format"] == "uri"
    assert client.get("/api/v1/docs").status_code == 200


def test_bulk_create_and_update(api, records):
    client, tokens, _ = api
    result = client.post("/api/v1/records/account/bulk", json={"records": [{"name": "a"}, {"grade": "Z"}, {"name": "c"}]},
                         headers=h(tokens["admin"]))
    assert result.status_code == 207
    body = result.json()
    assert body["written"] == 2 and [e["index"] for e in body["errors"]] == [1]
    ids = [i for i in body["ids"] if i]
    updated = client.patch("/api/v1/records/account/bulk", json={"records": [{"id": ids[0], "grade": "A"}]},
                           headers=h(tokens["admin"]))
    assert updated.status_code == 200 and updated.json()["written"] == 1
    assert records.get("account", ids[0], actor=SYSTEM)["grade"] == "A"


def test_nul_characters_are_refused_not_a_server_error(api, records):
    client, tokens, _ = api
    made = client.post("/api/v1/records/account", json={"name": "a\x00b"}, headers=h(tokens["admin"]))
    assert made.status_code == 422 and made.json()["errors"][0]["code"] == "invalid_text"
    for params in ({"search": "a\x00"}, {"filter": '[["name", "contains", "a\\u0000"]]'}):
        assert client.get("/api/v1/records/account", params=params, headers=h(tokens["admin"])).status_code == 422
    assert records.count("account", actor=SYSTEM) == 0
