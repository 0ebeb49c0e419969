"""Erasing a person leaves no copy of their values anywhere in the database, on SQLite and
PostgreSQL: not in outbox messages (which are cancelled, and a real worker sends nothing about
them to a real SMTP server or webhook receiver), notifications, the execution log, audit
details, failed sign-ins, archived columns or history — and the erasure itself sends nothing."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation import manual
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import execution_log, notifications, outbox
from metacrm.engine.automation.worker import Worker
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import Actor
from metacrm.engine.security import auth
from tests.conftest import install
from tests.receivers import SMTPServer, WebhookReceiver

CONTACT = """
name: contact
fields:
  - {name: first_name, type: text}
  - {name: last_name, type: text, required: true}
  - {name: email, type: email, unique: true}
  - {name: phone, type: phone}
  - {name: nickname, type: text}
  - {name: full_name, type: formula, result_type: text, expression: "concat(first_name, ' ', last_name)"}
  - {name: rating, type: integer}
automations:
  - name: welcome
    trigger: {on: created}
    actions:
      - notify: {to: owner, message: "New contact {{ record.full_name }} <{{ record.email }}>"}
      - webhook: {url: "URL", timeout: 2, max_attempts: 3}
  - name: email_changed
    trigger: {on: updated}
    condition: "email != previous.email"
    actions:
      - notify: {to: owner, message: "{{ record.last_name }} changed email from {{ previous.email }}"}
      - email: {to: ["field:email"], subject: "Welcome {{ record.first_name }}", body: "We call {{ record.phone }}."}
      - webhook: {url: "URL", timeout: 2, max_attempts: 3}
  - name: duplicate
    trigger: {on: manual}
    actions:
      - create: {object: contact, fields: {last_name: "'Copy'", email: "email"}}
"""
SECRETS = ["Zaphod", "Beeblebrox", "zaphod@heartofgold.example", "z.beeblebrox@heartofgold.example",
           "+44 20 7946 0999", "+44 20 7946 0000", "Zippy", "Zaphy", "heartofgold"]


def dump(runtime) -> str:
    """Every row of every table in the database (reflected, so nothing is left out), as text."""
    with runtime.db.engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        assert "metacrm_outbox" in names and "contact" in names
        text = []
        for name in names:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            text += [f"{name}: {tuple(row)}" for row in conn.execute(sa.select(table))]
    return "\n".join(text).lower()


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


@pytest.fixture
def world(runtime, monkeypatch):
    with WebhookReceiver() as hook, SMTPServer() as smtp:
        install(runtime, CONTACT.replace("URL", hook.url))
        with runtime.db.begin() as conn:
            olivia = identity.create_user(conn, "Olivia", "olivia@example.com", roles=["admin"])
            token = auth.create_token(conn, olivia.id, "t", auth.utcnow())
        worker = Worker(runtime, mail=MailSettings("127.0.0.1", smtp.port, "crm@example.com", timeout=5))
        yield runtime, Actor(user_id=olivia.id, roles=frozenset({"admin"})), token, hook, smtp, worker


def test_erase_leaves_no_copy_of_the_person_anywhere_and_sends_nothing(world, records):
    runtime, olivia, token, hook, smtp, worker = world
    client = TestClient(create_app(runtime))
    person = records.create("contact", {"first_name": "Zaphod", "last_name": "Beeblebrox", "rating": 5,
                                        "email": "zaphod@heartofgold.example", "phone": "+44 20 7946 0999",
                                        "nickname": "Zippy"}, actor=olivia)
    worker.run_once()  # the welcome notification is stored, the webhook delivered (done, still quoting)
    assert len(hook.received) == 1 and "Zaphod" in json.dumps(hook.received[0]["body"])
    records.update("contact", person["id"], {"email": "z.beeblebrox@heartofgold.example",
                                             "phone": "+44 20 7946 0000", "nickname": "Zaphy"}, actor=olivia)
    install(runtime, CONTACT.replace("URL", hook.url).replace("  - {name: nickname, type: text}\n", ""))
    [outcome] = manual.run_manual(records, "contact.duplicate", [person["id"]], olivia)
    assert isinstance(outcome.error, ValidationFailed) and "already used" in str(outcome.error)  # a failing
    # rule logs the email it tripped on
    exported = client.get("/api/v1/records/contact/export", params={"search": "z.beeblebrox@heartofgold.example"},
                          headers={"Authorization": f"Bearer {token}"})
    assert exported.status_code == 200 and "Beeblebrox" in exported.text
    assert client.post("/api/v1/auth/login", json={"email": "Z.Beeblebrox@heartofgold.example",
                                                   "password": "guess"}).status_code == 401
    other = records.create("contact", {"first_name": "Trillian", "last_name": "Astra", "email": "tricia@example.com"},
                           actor=olivia)
    before = dump(runtime)
    assert set(leaks(before)) == set(SECRETS)  # every kind of copy is really there
    with runtime.db.engine.connect() as conn:
        pending = conn.execute(sa.select(outbox.c.kind).where(outbox.c.record_id == person["id"],
                                                              outbox.c.status == "pending")).scalars().all()
        assert sorted(pending) == ["email", "notify", "webhook"]
        assert any("z.beeblebrox@heartofgold.example" in (e or "") for e in
                   conn.execute(sa.select(execution_log.c.error)).scalars())
        outbox_rows = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()

    erased = client.post(f"/api/v1/privacy/contact/{person['id']}/erase",
                         json={"reason": "Asked by Zaphod Beeblebrox (zaphod@heartofgold.example) by phone "
                                         "+44 20 7946 0999, ticket 42"},
                         headers={"Authorization": f"Bearer {token}"})
    assert erased.status_code == 200, erased.text
    after = dump(runtime)
    assert leaks(after) == [], [line for line in after.splitlines() if leaks(line)]
    assert erased.json()["outbox_cancelled"] == 3
    assert erased.json()["erased"] == ["email", "first_name", "last_name", "phone", "nickname"]
    assert "ticket 42" in after and "tricia@example.com" in after  # the rest is kept
    with runtime.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == outbox_rows  # sent nothing
        statuses = dict(conn.execute(sa.select(outbox.c.kind, outbox.c.status)
                                     .where(outbox.c.record_id == person["id"], outbox.c.status != "done")).all())
        assert statuses == {"email": "cancelled", "notify": "cancelled", "webhook": "cancelled"}
        messages = conn.execute(sa.select(notifications.c.message)).scalars().all()
    assert messages == ["New contact [erased] <[erased]>"]

    hook.received.clear()
    worker.run_once()  # a real worker, a real SMTP server and webhook receiver: nothing about the person
    assert smtp.messages == []
    assert [r["body"]["record"]["id"] for r in hook.received] == [other["id"]]  # Trillian's welcome only
    delivered = json.dumps([r["body"] for r in hook.received])
    assert leaks(delivered) == []
    with runtime.db.engine.connect() as conn:
        stored = conn.execute(sa.select(notifications.c.message).order_by(notifications.c.id)).scalars().all()
    assert stored[-1] == "New contact Trillian Astra <tricia@example.com>" and leaks(" ".join(stored)) == []
    assert leaks(dump(runtime)) == []


def test_erasure_of_a_short_or_common_value_leaves_other_words_alone(world, records):
    """Whole words only: erasing the name "Ann" must not turn "Annual" into "[erased]ual"."""
    runtime, olivia, token, hook, smtp, worker = world
    client = TestClient(create_app(runtime))
    ann = records.create("contact", {"first_name": "Ann", "last_name": "Li", "email": "ann.li@example.com"}, actor=olivia)
    annual = records.create("contact", {"first_name": "Annual", "last_name": "Report", "email": "annual@example.com"},
                            actor=olivia)
    response = client.post(f"/api/v1/privacy/contact/{ann['id']}/erase", json={"reason": "asked"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    with runtime.db.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(outbox.c.record_id, outbox.c.status).where(outbox.c.kind == "notify")).all())
        text = {r.record_id: r.payload["message"] for r in conn.execute(
            sa.select(outbox).where(outbox.c.kind == "notify"))}
    assert rows == {ann["id"]: "cancelled", annual["id"]: "pending"}
    assert text == {ann["id"]: "New contact [erased] <[erased]>",
                    annual["id"]: "New contact Annual Report <annual@example.com>"}
    # erasing again finds only placeholders: it does not erase the marks of the first erasure
    again = client.post(f"/api/v1/privacy/contact/{ann['id']}/erase", json={"reason": "asked twice"},
                        headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200 and again.json()["erased"] == [] and again.json()["copies_scrubbed"] == 0
    with runtime.db.engine.connect() as conn:
        message = conn.execute(sa.select(outbox.c.payload).where(outbox.c.record_id == ann["id"],
                                                                 outbox.c.kind == "notify")).scalar_one()
    assert message["message"] == "New contact [erased] <[erased]>"
