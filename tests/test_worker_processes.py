"""Real worker processes: one killed in the middle of sending an email, three sharing 1,000 jobs on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from metacrm.engine.automation import outbox as outbox_queue
from metacrm.engine.automation.tables import outbox
from metacrm.engine.runtime import Runtime
from tests.receivers import SMTPServer, WebhookReceiver, wait_for

ROOT = Path(__file__).resolve().parent.parent


def start_worker(db_url: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "worker", "--poll", "0.05",
                             *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def outbox_rows(runtime):
    with runtime.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]


def test_worker_killed_mid_email_is_retried_without_a_duplicate(runtime):
    with runtime.db.begin() as conn:
        outbox_queue.enqueue(conn, "email", {"to": ["a@example.com"], "subject": "Hi", "body": "Once"},
                                     datetime.now(timezone.utc))
    with SMTPServer() as smtp:
        smtp.box.delay = 30  # hold the first delivery in the middle of DATA
        env = {"METACRM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}"}
        first = start_worker(runtime.db.url, "--lease", "2", env=env)
        try:
            assert smtp.box.data_started.wait(30), "the worker never started sending"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        smtp.box.delay = 0
        second = start_worker(runtime.db.url, "--lease", "2", env=env)
        try:
            assert wait_for(lambda: outbox_rows(runtime)[0]["status"] == "done", timeout=60)
        finally:
            second.terminate()
            second.wait(10)
        assert wait_for(lambda: len(smtp.messages) >= 1, timeout=10)
        assert len(smtp.messages) == 1
    (row,) = outbox_rows(runtime)
    assert smtp.messages[0]["Message-ID"] == f"<{row['delivery_id']}@localhost>"
    assert row["attempts"] == 2


def test_three_workers_share_a_thousand_jobs_exactly_once(pg_database):
    runtime = Runtime.open(pg_database)
    with runtime.db.begin() as conn:
        conn.execute(sa.delete(outbox))
    with WebhookReceiver() as hook:
        with runtime.db.begin() as conn:
            now = datetime.now(timezone.utc)
            for i in range(1000):
                outbox_queue.enqueue(conn, "webhook", {"url": hook.url, "timeout": 5, "body": {"n": i}}, now)
        workers = [start_worker(pg_database, "--batch", "10") for _ in range(3)]
        try:
            assert wait_for(lambda: len(hook.received) >= 1000 and
                            all(r["status"] == "done" for r in outbox_rows(runtime)), timeout=240)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(10)
        deliveries = Counter(r["delivery"] for r in hook.received)
    assert len(deliveries) == 1000 and set(deliveries.values()) == {1}
    rows = outbox_rows(runtime)
    assert all(r["attempts"] == 1 for r in rows)
    assert len({r["locked_by"] for r in rows}) == 3  # the work was really shared
    runtime.db.dispose()
