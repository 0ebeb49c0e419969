"""GET /api/v1/me and `me` wherever a user id is (owner=me, filter JSON, current_user()), through
the API, the record engine and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import os

import pytest

from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query, QueryError
from tests.reads_world import World, world  # noqa: F401, F811  (fixture)


def test_me_says_who_the_caller_is_and_what_they_may_do(world: World):
    body = world.http.get("/api/v1/me", headers=world.as_("ann")).json()
    assert body["id"] == world.users["ann"] and body["email"] == "ann@x.com" and body["name"] == "Ann"
    assert body["roles"] == ["rep"] and body["manager"] is None and body["language"] == "en"
    assert [g["name"] for g in body["groups"]] == ["east"]
    assert set(body["permissions"]) == {"company", "person"}  # memo is closed to reps: absent
    assert body["permissions"]["company"] == {"read": True, "create": True, "update": True, "delete": False,
                                              "export": True, "scope": {"read": "own", "update": "own", "delete": None}}
    junior = world.http.get("/api/v1/me", headers=world.as_("ann2")).json()
    assert junior["manager"] == world.users["ann"] and junior["groups"] == []
    admin = world.http.get("/api/v1/me", headers=world.as_("adm")).json()
    assert set(admin["permissions"]) == {"company", "person", "memo"}
    assert admin["permissions"]["memo"]["scope"] == {"read": "all", "update": "all", "delete": "all"}


def test_me_never_names_a_hidden_field_and_needs_a_sign_in(world: World):
    text = world.http.get("/api/v1/me", headers=world.as_("ann")).text
    assert "secret" not in text and "salary" not in text and "memo" not in text
    anonymous = world.http.get("/api/v1/me")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    assert world.http.get("/api/v1/me", params={"x": "1"}, headers=world.as_("ann")).status_code == 400


def test_me_works_with_a_browser_session(world: World, runtime):
    from metacrm.engine.security import auth

    with runtime.db.begin() as conn:
        auth.set_password(conn, world.users["bob"], "correct horse battery")
    signed = world.http.post("/api/v1/auth/login", json={"email": "bob@x.com", "password": "correct horse battery"})
    assert signed.status_code == 200, signed.text
    assert world.http.get("/api/v1/me").json()["id"] == world.users["bob"]


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["name"] for r in response.json()["records"])


def test_owner_me_means_each_callers_own_records(world: World):
    get = lambda who, **params: world.http.get("/api/v1/records/company", params=params, headers=world.as_(who))  # noqa: E731
    assert names(get("ann", owner="me")) == ["Acme", "Apex"]
    assert names(get("adm", owner="me")) == []          # the admin reads everything, owns nothing
    assert names(get("vic", filter='[["owner", "eq", "me"]]')) == []
    assert names(get("vic", filter=json.dumps([["owner", "in", ["me", world.users["bob"]]]]))) == ["Bolt"]
    assert names(get("adm", filter=json.dumps([["owner", "ne", "current_user()"]]))) == ["Acme", "Apex", "Bolt"]
    assert names(get("adm", filter=json.dumps({"not": ["owner", "eq", "me"]}))) == ["Acme", "Apex", "Bolt"]
    assert names(get("bob", filter='[["owner", "eq", "current_user()"]]')) == ["Bolt"]
    assert world.http.get("/api/v1/records/company", params={"owner": "me"}).status_code == 401


def test_me_on_a_user_field_and_as_text_elsewhere(world: World, records):
    records.update("company", world.companies["Bolt"], {"champion": world.users["vic"], "tier": "me"}, actor=SYSTEM)
    vic = world.as_("vic")
    assert names(world.http.get("/api/v1/records/company", params={"champion": "me"}, headers=vic)) == ["Bolt"]
    # on a text field `me` is just the text "me"
    assert names(world.http.get("/api/v1/records/company", params={"tier": "me"}, headers=vic)) == ["Bolt"]


def test_me_needs_an_acting_user_in_the_engine(world: World, records):
    ann = Actor(user_id=world.users["ann"], roles=frozenset({"rep"}))
    assert [r["name"] for r in records.list("company", Query(filter=[["owner", "eq", "me"]], sort=("name",)),
                                            actor=ann).records] == ["Acme", "Apex"]
    assert records.count("company", [["owner", "eq", "me"]], actor=ann) == 2
    with pytest.raises(QueryError, match="signed-in user"):
        records.list("company", Query(filter=[["owner", "eq", "me"]]), actor=SYSTEM)


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_filter_owner_me_as_a_user(world: World, db_url):
    done = cli(db_url, "records", "list", "company", "--filter", "owner:eq=me", "--as", "ann@x.com")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["name"] for r in rows) == ["Acme", "Apex"] and all("secret" not in r for r in rows)
    alone = cli(db_url, "records", "list", "company", "--filter", "owner=me")
    assert alone.returncode != 0 and "signed-in user" in alone.stderr and "Traceback" not in alone.stderr
    nobody = cli(db_url, "records", "list", "company", "--as", "nobody@x.com")
    assert nobody.returncode != 0 and "nobody@x.com" in nobody.stderr
