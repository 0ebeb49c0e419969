"""The public pool page of the web UI on SQLite and PostgreSQL: members see the pool and claim
until the engine's holding limit refuses (the reason shown in their language), return records,
wait out the cooldown; a user outside the pool sees nothing of it; every claim needs CSRF."""

from __future__ import annotations

import pytest
from metacrm.engine import identity
from metacrm.engine.automation import pools
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.security import auth

from tests.conftest import install
from tests.web import PASSWORD, csrf_of, sign_in, site_client

LEAD = """
name: prospect
label: {en: Prospect, zh-CN: 潜客, zh-TW: 潛客}
title_field: name
fields:
  - {name: name, type: text, required: true}
pools:
  - name: open
    label: {en: Open prospects, zh-CN: 潜客公海, zh-TW: 潛客公海}
    members: ["group:sales"]
    holding_limit: 2
    reclaim_cooldown: 7d
permissions:
  rep: {create: true, read: own, edit: own}
"""


def user(runtime, name, email, groups, language="en"):
    with runtime.db.begin() as conn:
        made = identity.create_user(conn, name, email, roles=["rep"], groups_=groups, language=language)
        auth.set_password(conn, made.id, PASSWORD)
    return made.id


@pytest.fixture
def pool(runtime, records):
    install(runtime, LEAD)
    ann = user(runtime, "Ann", "ann@example.com", ["sales"])
    user(runtime, "Lin", "lin@example.com", ["sales"], language="zh-CN")
    user(runtime, "Out", "out@example.com", [])
    ids = []
    for name in ("P1 <script>alert(1)</script>", "P2", "P3"):
        made = records.create("prospect", {"name": name}, actor=SYSTEM)
        with runtime.db.begin() as conn:
            pools.put(records, conn, "prospect", made["id"], "open", SYSTEM)
        ids.append(made["id"])
    return {"ann": ann, "ids": ids}


def client_for(runtime, email):
    client = site_client(runtime)
    assert sign_in(client, email).status_code == 303
    return client


def post(client, path, record_id, token):
    return client.post(path, data={"csrf_token": token, "object": "prospect", "pool": "open", "id": record_id})


def test_members_claim_until_the_limit_refuses_with_the_reason_and_return(runtime, records, pool):
    client = client_for(runtime, "ann@example.com")
    home = client.get("/app")
    assert 'href="/app/pools"' in home.text  # in the navigation: Ann belongs to a pool
    page = client.get("/app/pools")
    assert page.status_code == 200 and "Open prospects" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert(1)" not in page.text
    token = csrf_of(page.text)
    first, second, third = pool["ids"]
    for record_id in (first, second):
        done = post(client, "/app/pools/claim", record_id, token)
        assert done.status_code == 303 and done.headers["location"] == "/app/pools?done=claimed"
        assert records.get("prospect", record_id, actor=SYSTEM)["owner"] == pool["ann"]
    refused = post(client, "/app/pools/claim", third, token)
    assert refused.status_code == 409
    assert "most records this pool allows (2)" in refused.text
    assert records.get("prospect", third, actor=SYSTEM)["owner"] is None
    mine = client.get("/app/pools").text
    assert "You hold 2 of at most 2." in mine and mine.count('action="/app/pools/return"') == 2

    back = post(client, "/app/pools/return", first, token)
    assert back.status_code == 303
    assert records.get("prospect", first, actor=SYSTEM)["owner"] is None
    again = post(client, "/app/pools/claim", first, token)  # the cooldown: 7 days
    assert again.status_code == 409 and "returned this record recently" in again.text
    assert post(client, "/app/pools/claim", third, token).status_code == 303  # back under the limit


def test_the_refusal_is_in_the_users_language(runtime, records, pool):
    ann = client_for(runtime, "ann@example.com")
    token = csrf_of(ann.get("/app/pools").text)
    for record_id in pool["ids"][:2]:
        post(ann, "/app/pools/claim", record_id, token)
    lin = client_for(runtime, "lin@example.com")
    page = lin.get("/app/pools")
    assert "潜客公海" in page.text
    lin_token = csrf_of(page.text)
    assert post(lin, "/app/pools/claim", pool["ids"][2], lin_token).status_code == 303
    gone = post(lin, "/app/pools/claim", pool["ids"][0], lin_token)  # Ann has it
    assert gone.status_code == 409 and "此记录已不在公海中" in gone.text


def test_a_user_outside_the_pool_sees_nothing_and_cannot_claim(runtime, records, pool):
    client = client_for(runtime, "out@example.com")
    home = client.get("/app")
    assert 'href="/app/pools"' not in home.text
    page = client.get("/app/pools")
    assert page.status_code == 200 and "P2" not in page.text and "Open prospects" not in page.text
    refused = post(client, "/app/pools/claim", pool["ids"][1], csrf_of(page.text))
    assert refused.status_code == 409 and "not a member" in refused.text
    assert records.get("prospect", pool["ids"][1], actor=SYSTEM)["owner"] is None


def test_a_claim_without_the_csrf_token_is_refused(runtime, records, pool):
    client = client_for(runtime, "ann@example.com")
    client.get("/app/pools")
    refused = client.post("/app/pools/claim", data={"object": "prospect", "id": pool["ids"][0]})
    assert refused.status_code == 403
    assert records.get("prospect", pool["ids"][0], actor=SYSTEM)["owner"] is None
    bad = client.post("/app/pools/claim", data={"csrf_token": csrf_of(client.get("/app").text), "object": "nope",
                                                "id": "x"})
    assert bad.status_code == 400 and "Traceback" not in bad.text


@pytest.mark.parametrize("bad", ["x", "'; drop table x", "00000000-0000-0000-0000-000000000000", "9" * 400])
def test_a_malformed_or_unknown_id_gets_the_reason_not_an_error_page(runtime, records, pool, bad):
    client = client_for(runtime, "ann@example.com")
    token = csrf_of(client.get("/app/pools").text)
    for path in ("/app/pools/claim", "/app/pools/return"):
        refused = post(client, path, bad, token)
        assert refused.status_code == 409 and "no longer in the pool" in refused.text
