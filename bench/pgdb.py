"""A throwaway PostgreSQL database for one benchmark run: created, then dropped."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def pg_create(admin_url: str, prefix: str = "metacrm_bench") -> tuple[sa.Engine, str, str]:
    """(admin engine, database name, URL of the new database)."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return admin, name, url


def pg_drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()
