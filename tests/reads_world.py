"""A small seeded world for the caller-facing reads of the API (/me, `me` in filters, views,
include=, history, notifications), used by tests/test_api_me.py, test_api_views.py,
test_api_include.py, test_api_history.py and test_api_notifications.py.

company: reps read their own companies and never see `secret`; the `mine` view filters on
`owner = me`, `by_secret` on the hidden field. person (child) hides `salary` from reps; memo
(child) is closed to reps.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.security import auth
from tests.conftest import install

COMPANY = """
name: company
title_field: name
history: true
fields:
  - {name: name, type: text, required: true, searchable: true}
  - {name: tier, type: text}
  - {name: secret, type: integer}
  - {name: champion, type: user}
layouts:
  list_views:
    - {name: mine, columns: [name, secret, owner], filter: [[owner, eq, me]], sort: [name]}
    - {name: by_secret, columns: [name], filter: [[secret, gt, 0]]}
    - {name: tier_a, columns: [name, tier], filter: [[tier, eq, A]], sort: [-name]}
  related_lists:
    - {object: person, via: company, columns: [name, salary], sort: [name]}
    - {object: memo, via: company}
permissions:
  rep: {create: true, read: own, edit: own, export: true, fields: {secret: hidden}}
  viewer: {read: all}
"""
PERSON = """
name: person
title_field: name
fields:
  - {name: name, type: text, required: true}
  - {name: salary, type: integer}
  - {name: company, type: lookup, target: company}
permissions:
  rep: {create: true, read: own, edit: own, fields: {salary: hidden}}
  viewer: {read: all}
"""
MEMO = """
name: memo
fields:
  - {name: body, type: text}
  - {name: company, type: lookup, target: company}
permissions:
  viewer: {read: all}
"""


@dataclass
class World:
    http: TestClient
    users: dict[str, str]
    tokens: dict[str, str]
    companies: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def world(runtime, records) -> World:
    install(runtime, COMPANY, PERSON, MEMO)
    with runtime.db.begin() as conn:
        made = {
            "ann": identity.create_user(conn, "Ann", "ann@x.com", roles=["rep"], groups_=["east"]),
            "bob": identity.create_user(conn, "Bob", "bob@x.com", roles=["rep"]),
            "vic": identity.create_user(conn, "Vic", "vic@x.com", roles=["viewer"], language="zh-CN"),
            "adm": identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"]),
        }
        made["ann2"] = identity.create_user(conn, "Ann Junior", "ann2@x.com", roles=["rep"], manager=made["ann"].id)
    users = {k: u.id for k, u in made.items()}
    with runtime.db.begin() as conn:
        tokens = {k: auth.create_token(conn, u, "t", auth.utcnow()) for k, u in users.items()}
    companies = {}
    for name, owner, tier in (("Acme", "ann", "A"), ("Apex", "ann", "B"), ("Bolt", "bob", "A")):
        companies[name] = records.create("company", {"name": name, "tier": tier, "secret": 4242, "owner": users[owner]},
                                         actor=SYSTEM)["id"]
    return World(TestClient(create_app(runtime)), users, tokens, companies)


def leaf_values(value):
    """Every scalar in a JSON document (keys included)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from leaf_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaf_values(item)
    else:
        yield value
