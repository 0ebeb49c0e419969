"""Message-IDs and webhook delivery ids: the same on every attempt of one outbox entry, and
never the same for two entries — not even of two installations. Real SMTP and HTTP receivers,
SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from metacrm.engine.automation import outbox as outbox_queue
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import outbox
from metacrm.engine.automation.worker import Worker
from metacrm.engine.config import Settings
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.runtime import Runtime
from tests.conftest import PG_ADMIN_URL
from tests.receivers import SMTPServer, WebhookReceiver

START = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)


class Clock(FixedClock):
    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def second_db_url(db_url, tmp_path):
    """Another empty database of the same kind: a second installation."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    name = f"metacrm_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def send_one_of_each(url: str, smtp: SMTPServer, hook: WebhookReceiver, clock: Clock) -> dict:
    """A fresh installation queues an email and a webhook and delivers them; returns its outbox ids."""
    runtime = Runtime.open(url)
    try:
        with runtime.db.begin() as conn:
            outbox_queue.enqueue(conn, "email", {"to": ["a@example.com"], "subject": "Hi", "body": "Hello"}, clock.now())
            outbox_queue.enqueue(conn, "webhook", {"url": hook.url, "timeout": 5, "body": {"n": 1}}, clock.now())
        worker = Worker(runtime, clock=clock, mail=MailSettings("127.0.0.1", smtp.port, "crm@example.com", timeout=5))
        while worker.run_once():
            clock.advance(minutes=5)
        with runtime.db.engine.connect() as conn:
            return {r.kind: r.delivery_id for r in conn.execute(sa.select(outbox).where(outbox.c.status == "done"))}
    finally:
        runtime.close()


def test_delivery_ids_are_kept_across_retries_and_unique_across_installations(db_url, second_db_url):
    clock = Clock(START)
    with SMTPServer() as smtp, WebhookReceiver() as hook:
        smtp.box.fail_next, hook.fail_next = 1, 1  # the first attempt of each is refused for now
        first = send_one_of_each(db_url, smtp, hook, clock)
        second = send_one_of_each(second_db_url, smtp, hook, clock)
    refused, (retried, other) = smtp.box.refused, smtp.messages
    assert len(refused) == 1 and refused[0]["Message-ID"] == retried["Message-ID"]  # the retry is the same message
    assert retried["Message-ID"] == f"<{first['email']}@example.com>"
    assert other["Message-ID"] == f"<{second['email']}@example.com>"
    assert retried["Message-ID"] != other["Message-ID"]  # the same first entry of two installations
    assert re.fullmatch(r"<[0-9a-f-]{36}@example\.com>", other["Message-ID"])
    assert [r["delivery"] for r in hook.received] == [first["webhook"], second["webhook"]]
    assert first["webhook"] != second["webhook"] and first["webhook"] != first["email"]


def test_the_message_id_domain_can_be_configured():
    sender = {"METACRM_MAIL_FROM": "CRM <crm@sales.example.com>"}
    assert Settings.from_env(sender).mail.message_id("abc") == "<abc@sales.example.com>"
    domain = {**sender, "METACRM_MAIL_DOMAIN": "mail.example.org"}
    assert Settings.from_env(domain).mail.message_id("abc") == "<abc@mail.example.org>"
    bad = {**sender, "METACRM_MAIL_DOMAIN": "bad domain>\r\nBcc: x"}
    assert Settings.from_env(bad).mail.message_id("abc") == "<abc@localhost>"
