"""Test fixtures: every storage/record test runs on SQLite and on PostgreSQL.

PostgreSQL is 127.0.0.1:5432 (user postgres, trust) unless METACRM_TEST_PG_URL says
otherwise. The session creates its own database and drops it at the end; each test
starts from an empty schema. Under CI=true an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from textwrap import dedent

import pytest
import sqlalchemy as sa

from metacrm.engine.config import Settings
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.metamodel.loader import load_documents

PG_ADMIN_URL = os.environ.get("METACRM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent


def _pg_admin():
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database():
    """A PostgreSQL database for this test session (created here, dropped at the end)."""
    name = f"metacrm_test_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
            {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL to an empty database, once for SQLite (a file) and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture
def settings() -> Settings:
    """The engine settings the `runtime` fixture runs with (the defaults). A test that needs
    others overrides this fixture: @pytest.mark.parametrize("settings", [Settings(...)])."""
    return Settings()


@pytest.fixture
def runtime(db_url, settings):
    rt = Runtime.open(db_url, settings=settings)
    yield rt
    rt.close()


@pytest.fixture
def records(runtime):
    return RecordService(runtime)


def documents(*texts: str, names: list[str] | None = None):
    """Parse YAML object documents given inline in a test."""
    return load_documents(
        (names[i] if names else f"doc{i}.yaml", dedent(text)) for i, text in enumerate(texts)
    )


def install(runtime: Runtime, *texts: str, purge: bool = False):
    """Plan and apply inline YAML documents; returns the plan that was applied."""
    plan = runtime.plan(documents(*texts), purge=purge)
    runtime.apply(plan)
    return plan


def table_columns(runtime: Runtime, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(runtime.db.engine).get_columns(table)}
