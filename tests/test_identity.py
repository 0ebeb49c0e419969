"""Sign-in and API tokens over real HTTP (Starlette TestClient) on SQLite and PostgreSQL:
argon2id hashes, no account oracle, throttling that cannot lock a user out, tokens with ids,
a list and a lifetime cap."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import replace
from datetime import timedelta

import argon2
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine.api import create_app
from metacrm.engine import identity
from metacrm.engine.runtime import Runtime
from metacrm.engine.security import auth
from tests.conftest import install

THING = "name: thing\nfields:\n  - {name: name, type: text}\n"
USER_ADDRESS, ATTACKER_ADDRESS = ("198.51.100.7", 40000), ("203.0.113.9", 40000)
PAIR_LIMIT, ADDRESS_LIMIT = 5, 20  # failed sign-ins per (email, address) and per address (docs/security.md)


@pytest.fixture
def api(runtime):
    install(runtime, THING)
    with runtime.db.begin() as conn:
        ada = identity.create_user(conn, "Ada", "ada@example.com", roles=["admin"])
        bob = identity.create_user(conn, "Bob", "bob@example.com")
        gone = identity.create_user(conn, "Gone", "gone@example.com")
        conn.execute(sa.update(identity.users).where(identity.users.c.id == gone.id).values(active=False))
        for user, password in ((ada, "correct horse"), (bob, "battery staple"), (gone, "old password")):
            auth.set_password(conn, user.id, password)
        now = auth.utcnow()
        tokens = {"ada": auth.create_token(conn, ada.id, "t", now), "bob": auth.create_token(conn, bob.id, "t", now)}
    return create_app(runtime), tokens, {"ada": ada.id, "bob": bob.id}


def client(app, address=USER_ADDRESS) -> TestClient:
    return TestClient(app, client=address)


def login(http: TestClient, email: str, password: str):
    return http.post("/api/v1/auth/login", json={"email": email, "password": password})


def h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def stored_hash(runtime, email: str) -> str:
    with runtime.db.engine.connect() as conn:
        return conn.execute(sa.select(identity.users.c.password_hash).where(identity.users.c.email == email)).scalar()


@pytest.fixture
def verified(monkeypatch):
    """The hashes argon2's real PasswordHasher.verify is called with, and whether an event loop
    was running in the calling thread (a spy: the real verify still does the work)."""
    calls: list[tuple[str, bool]] = []
    real = argon2.PasswordHasher.verify

    def spy(self, hash, password):
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        calls.append((hash if isinstance(hash, str) else hash.decode(), on_loop))
        return real(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    return calls


# -- passwords -----------------------------------------------------------------------------------


def test_unknown_emails_cost_a_real_verification_like_known_ones(api, runtime, verified):
    """Not a timing measurement: sign-in for an email without an account (or an inactive one)
    must verify the password against a real argon2id hash with the same parameters as users'
    hashes, so it does the same work as a wrong password for a real account."""
    app, _, _ = api
    http = client(app)
    assert login(http, "bob@example.com", "wrong password").status_code == 401
    assert login(http, "nobody@example.com", "wrong password").status_code == 401
    assert login(http, "gone@example.com", "old password").status_code == 401  # inactive: like unknown
    bob_hash = stored_hash(runtime, "bob@example.com")
    assert [hash for hash, _ in verified] == [bob_hash, auth.dummy_hash(), auth.dummy_hash()]
    assert argon2.extract_parameters(auth.dummy_hash()) == argon2.extract_parameters(bob_hash)
    assert bob_hash.startswith("$argon2id$")
    # and every verification ran in a worker thread, never on the server's event loop
    assert [on_loop for _, on_loop in verified] == [False, False, False]


def scrypt_hash(password: str) -> str:
    """A hash as stored before argon2 (scrypt$n$r$p$salt$digest)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_old_hashes_still_sign_in_and_are_upgraded(api, runtime):
    app, _, users = api
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("battery staple")
    with runtime.db.begin() as conn:
        conn.execute(sa.update(identity.users).where(identity.users.c.id == users["ada"])
                     .values(password_hash=scrypt_hash("correct horse")))
        conn.execute(sa.update(identity.users).where(identity.users.c.id == users["bob"]).values(password_hash=weak))
    http = client(app)
    assert login(http, "ada@example.com", "wrong horse").status_code == 401
    assert stored_hash(runtime, "ada@example.com").startswith("scrypt$")  # a failure changes nothing
    assert login(http, "ada@example.com", "correct horse").status_code == 200
    assert login(http, "bob@example.com", "battery staple").status_code == 200
    for email, password in (("ada@example.com", "correct horse"), ("bob@example.com", "battery staple")):
        upgraded = stored_hash(runtime, email)
        assert upgraded.startswith("$argon2id$") and not auth.needs_rehash(upgraded), email
        assert argon2.extract_parameters(upgraded) == argon2.extract_parameters(auth.dummy_hash())
        assert login(http, email, password).status_code == 200


# -- throttling ----------------------------------------------------------------------------------


def test_failing_on_purpose_elsewhere_cannot_lock_a_user_out(api):
    app, _, _ = api
    attacker, user = client(app, ATTACKER_ADDRESS), client(app, USER_ADDRESS)
    for _ in range(PAIR_LIMIT):
        assert login(attacker, "bob@example.com", "guess").status_code == 401
    assert login(user, "bob@example.com", "battery staple").status_code == 200  # Bob is not locked out
    refused = login(attacker, "bob@example.com", "battery staple")  # but the attacker is, even with the password
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= auth.FAILURE_WINDOW.total_seconds() and refused.json()["retry_after"] == wait
    assert login(attacker, "ada@example.com", "correct horse").status_code == 200  # nor is the pair limit global


def test_one_address_trying_many_emails_is_throttled(api):
    app, _, _ = api
    sprayer = client(app, ATTACKER_ADDRESS)
    for n in range(ADDRESS_LIMIT):
        assert login(sprayer, f"user{n}@example.com", "Summer2026!").status_code == 401
    refused = login(sprayer, "bob@example.com", "battery staple")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert login(client(app, USER_ADDRESS), "bob@example.com", "battery staple").status_code == 200


# -- tokens --------------------------------------------------------------------------------------


def test_tokens_have_ids_a_list_of_ones_own_and_can_be_revoked(api, runtime):
    app, tokens, users = api
    http = client(app)
    made = http.post("/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 30}, headers=h(tokens["bob"]))
    assert made.status_code == 201
    body = made.json()
    assert set(body) == {"id", "token", "name", "expires_at"} and body["name"] == "ci"
    listed = http.get("/api/v1/auth/tokens", headers=h(tokens["bob"]))
    assert listed.status_code == 200
    mine = {t["id"]: t for t in listed.json()["tokens"]}
    assert body["id"] in mine and mine[body["id"]]["status"] == "active" and len(mine) == 2
    assert mine[body["id"]]["expires_at"] == body["expires_at"]
    assert body["token"] not in listed.text and "digest" not in listed.text
    with runtime.db.engine.connect() as conn:
        assert all(row.digest not in listed.text for row in conn.execute(sa.select(auth.tokens)))
    theirs = {t["id"] for t in http.get("/api/v1/auth/tokens", headers=h(tokens["ada"])).json()["tokens"]}
    assert body["id"] not in theirs  # only one's own
    assert http.delete(f"/api/v1/auth/tokens/{body['id']}", headers=h(tokens["bob"])).status_code == 204
    assert http.get("/api/v1/meta/objects", headers=h(body["token"])).status_code == 401
    after = {t["id"]: t for t in http.get("/api/v1/auth/tokens", headers=h(tokens["bob"])).json()["tokens"]}
    assert after[body["id"]]["status"] == "revoked"
    for bad in ("nope", "00000000-0000-0000-0000-000000000000", body["id"].upper() + "x"):
        assert http.delete(f"/api/v1/auth/tokens/{bad}", headers=h(tokens["bob"])).status_code == 404


def test_token_lifetime_is_capped_by_policy(api, runtime):
    app, tokens, users = api
    http = client(app)
    for asked in ({"expires_in_days": 3650}, {}, {"expires_in_days": 10**30}):
        made = http.post("/api/v1/auth/tokens", json={"name": "long", **asked}, headers=h(tokens["bob"]))
        assert made.status_code == 201, made.text
        with runtime.db.engine.connect() as conn:
            row = conn.execute(sa.select(auth.tokens).where(auth.tokens.c.id == made.json()["id"])).one()
        assert row.expires_at - row.created_at == timedelta(days=auth.DEFAULT_TOKEN_MAX_DAYS), asked
    assert http.post("/api/v1/auth/tokens", json={"name": "x", "expires_in_days": 0},
                     headers=h(tokens["bob"])).status_code == 400
    now = auth.utcnow()
    with runtime.db.begin() as conn:  # a token made before the cap existed, without an expiry
        conn.execute(auth.tokens.insert().values(id="00000000-0000-7000-8000-000000000001", user_id=users["bob"],
                                                 name="ancient", digest=auth._digest("mcrm_ancient"),
                                                 created_at=now - timedelta(days=400)))
        recent = auth.create_token(conn, users["bob"], "recent", now - timedelta(days=10))
    assert http.get("/api/v1/meta/objects", headers=h("mcrm_ancient")).status_code == 401
    assert http.get("/api/v1/meta/objects", headers=h(recent)).status_code == 200
    # lowering the cap (a server started with METACRM_TOKEN_MAX_DAYS=7) shortens existing tokens too
    weekly = Runtime.open(settings=replace(runtime.settings, token_max_days=7))
    http = client(create_app(weekly, owns_runtime=True))
    assert http.get("/api/v1/meta/objects", headers=h(recent)).status_code == 401
    made = http.post("/api/v1/auth/tokens", json={"name": "week"}, headers=h(tokens["bob"])).json()
    listed = {t["id"]: t for t in http.get("/api/v1/auth/tokens", headers=h(tokens["bob"])).json()["tokens"]}
    assert listed[made["id"]]["expires_at"] == made["expires_at"]
    with runtime.db.engine.connect() as conn:
        row = conn.execute(sa.select(auth.tokens).where(auth.tokens.c.id == made["id"])).one()
    assert row.expires_at - row.created_at == timedelta(days=7)
