"""The versioned schema of the engine's own tables: a database made by the previous release
(0.1.0, whose tables came from `create_all`, frozen in tests/data) is upgraded in place with its
data; a fresh one gets the newest schema; the steps produce exactly the tables the code declares;
data upgrades of user tables run once after the steps. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from metacrm.engine import identity
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.automation.tables import outbox
from metacrm.engine.automation.worker import Worker
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.engine.security import auth
from metacrm.engine.storage import system_migrations
from metacrm.engine.system_schema import OWNERS, system_metadata, system_tables
from tests.conftest import install
from tests.receivers import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
NOW = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)
STEPS = ["0001_baseline", "0002_delivery_ids_and_timer_attempts", "0003_address_indexes", "0004_comments_and_follows"]

# the 0.1.0 shape of the two tables that changed since
OLD_OUTBOX = sa.table("metacrm_outbox", *(sa.column(c) for c in (
    "kind", "payload", "status", "attempts", "max_attempts", "next_attempt_at", "created_at")))
OLD_TIMER = sa.table("metacrm_timer", *(sa.column(c) for c in ("object", "rule", "record_id", "due_at")))


def create_release_0_1_0(url: str) -> str:
    """A database as metacrm 0.1.0 left it: its tables (frozen DDL), a user with an API token,
    queued and delivered outbox entries, a timer. Returns the token."""
    engine = sa.create_engine(url)
    dialect = engine.dialect.name
    script = (DATA / f"system_schema_0.1.0.{dialect}.sql").read_text().split("\n\n", 1)[1]
    naive = NOW.replace(tzinfo=None)
    with engine.begin() as conn:
        for statement in script.split(";\n\n"):
            if statement.strip():
                conn.exec_driver_sql(statement.strip().rstrip(";"))
        user = identity.create_user(conn, "Ada", "ada@example.com", roles=["admin"])
        token = auth.create_token(conn, user.id, "old", NOW)
        payload = '{"to":["buyer@example.com"],"subject":"Queued before the upgrade","body":"Hello"}'
        conn.execute(OLD_OUTBOX.insert(), [
            {"kind": "email", "payload": payload, "status": "done" if i else "pending", "attempts": 1 if i else 0,
             "max_attempts": 5, "next_attempt_at": naive, "created_at": naive} for i in range(2500)])
        conn.execute(OLD_TIMER.insert().values(object="deal", rule="went_quiet",
                                               record_id="0190f0a0-0000-7000-8000-000000000001", due_at=naive))
    engine.dispose()
    return token


def declared_schema_differences(runtime: Runtime) -> list:
    """What differs between the database and the code's declared system tables (alembic's comparison)."""
    declared = system_metadata()
    with runtime.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, declared)


def applied(runtime: Runtime) -> list[str]:
    table = system_migrations.version_table
    with runtime.db.engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.name).order_by(table.c.name)).scalars())


def test_a_database_of_the_previous_release_is_upgraded_with_its_data(db_url):
    token = create_release_0_1_0(db_url)
    init = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "init"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert init.returncode == 0, init.stderr
    assert [line for line in init.stdout.splitlines() if "system schema" in line] == \
        [f"system schema: applied {step}" for step in STEPS]
    runtime = Runtime.open(db_url)
    try:
        assert applied(runtime) == STEPS and runtime.schema_steps == []
        assert declared_schema_differences(runtime) == []
        with runtime.db.engine.connect() as conn:
            entries = conn.execute(sa.select(outbox.c.status, outbox.c.delivery_id).order_by(outbox.c.id)).all()
            timer = conn.execute(sa.text("SELECT attempts, last_error FROM metacrm_timer")).one()
            user = auth.user_for_token(conn, token, NOW)
        assert len(entries) == 2500 and len({e.delivery_id for e in entries}) == 2500  # kept, each with its own id
        assert tuple(timer) == (0, None)
        assert user is not None and user.email == "ada@example.com"  # the old token still signs in
        with SMTPServer() as smtp:  # what was queued before the upgrade is delivered after it
            mail = MailSettings("127.0.0.1", smtp.port, "crm@example.com", timeout=5)
            Worker(runtime, clock=FixedClock(NOW + timedelta(minutes=1)), mail=mail).run_once()
            (message,) = smtp.messages
        assert message["Subject"] == "Queued before the upgrade"
        assert message["Message-ID"] == f"<{entries[0].delivery_id}@example.com>"
        assert runtime.upgrade_system_schema() == []  # nothing left to do
    finally:
        runtime.close()


def test_a_fresh_database_gets_the_newest_schema(db_url):
    runtime = Runtime.open(db_url)
    try:
        assert applied(runtime) == STEPS
        assert declared_schema_differences(runtime) == []
    finally:
        runtime.close()


def test_several_processes_opening_an_old_database_at_once_upgrade_it_once(db_url):
    create_release_0_1_0(db_url)
    opened, failures = [], []

    def open_it():
        try:
            opened.append(Runtime.open(db_url))
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert failures == [] and len(opened) == 3
        assert applied(opened[0]) == STEPS
    finally:
        for runtime in opened:
            runtime.close()


def test_the_declared_system_schema_is_every_table_a_fresh_database_gets(db_url):
    """engine.system_schema is the one list of the engine's tables: nothing is missing from it
    (a fresh database has exactly those tables) and no table is listed twice or by two owners."""
    names = [table.name for table in system_tables()]
    assert len(names) == len(set(names)) and all(name.startswith("metacrm_") for name in names)
    assert {"storage", "identity", "security", "automation"} <= set(OWNERS)
    runtime = Runtime.open(db_url)
    try:
        with runtime.db.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == set(names)
    finally:
        runtime.close()


def test_the_system_schema_does_not_depend_on_what_was_imported_before():
    """A process that imports only the declaration gets every table (nothing is registered as a
    side effect of importing some other module first)."""
    script = ("from metacrm.engine.system_schema import system_metadata; "
              "print(len(system_metadata().tables))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(system_tables())


def test_a_database_upgraded_by_a_newer_release_is_refused_clearly(db_url):
    Runtime.open(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(system_migrations.version_table.insert().values(name="0099_from_the_future",
                                                                     applied_at=NOW.replace(tzinfo=None)))
    engine.dispose()
    with pytest.raises(system_migrations.SchemaVersionError, match="newer metacrm.*0099_from_the_future"):
        Runtime.open(db_url)
    done = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "init"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("metacrm: this database was upgraded by a newer metacrm")


ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
"""


def test_data_upgrades_of_user_tables_run_once_after_the_schema_steps(db_url, monkeypatch):
    runtime = Runtime.open(db_url)
    install(runtime, ACCOUNT)
    RecordService(runtime).create("account", {"name": "acme"}, actor=Actor(system=True))
    runtime.close()
    calls = []

    def capitalise_names(conn, model):
        """Stands for a storage conversion: it sees the live model and rewrites a user table."""
        calls.append(sorted(model.objects))
        table = sa.table("account", sa.column("name"))
        conn.execute(sa.update(table).values(name=sa.func.upper(table.c.name)))

    monkeypatch.setattr(system_migrations, "DATA_UPGRADES",
                        [system_migrations.DataUpgrade("capitalise_names", capitalise_names)])
    for _ in range(2):
        runtime = Runtime.open(db_url)
        names = [r["name"] for r in RecordService(runtime).list("account", actor=SYSTEM).records]
        runtime.close()
        assert names == ["ACME"] and calls == [["account"]]
    empty(db_url)  # a new database has no old data: the upgrade is recorded, not run
    runtime = Runtime.open(db_url)
    assert "data:capitalise_names" in applied(runtime) and calls == [["account"]]
    runtime.close()


def empty(url: str) -> None:
    """Drop everything in the database (as the db_url fixture starts)."""
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
