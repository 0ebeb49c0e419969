"""Connecting to SQLite or PostgreSQL, with the same transactional behaviour on both.

pysqlite's default transaction handling commits before DDL, which would make schema
changes non-atomic; we turn it off and emit BEGIN ourselves (as SQLAlchemy's docs
recommend) so that DDL and data changes commit or roll back together on SQLite too.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DEFAULT_URL = "sqlite:///metacrm.db"
ENV_VAR = "METACRM_DATABASE_URL"


def database_url(explicit: str | None = None) -> str:
    """--database, else $METACRM_DATABASE_URL, else a SQLite file in the working directory."""
    url = explicit or os.environ.get(ENV_VAR) or DEFAULT_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An Engine plus the few facts about its dialect that the layers above need."""

    def __init__(self, url: str | None = None, **engine_options):
        self.url = database_url(url)
        self.engine: Engine = _create_engine(self.url, **engine_options)
        self.dialect: str = self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def begin(self):
        """A connection in a transaction: committed on success, rolled back on error."""
        return self.engine.begin()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading: on SQLite it does not take the write lock."""
        with self.engine.connect().execution_options(metacrm_read_only=True) as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """A transaction for DDL. On SQLite foreign keys are off during it (table rebuilds
        would otherwise cascade), and checked with PRAGMA foreign_key_check before commit."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    yield conn
                    if self.is_sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise ForeignKeyCheckFailed(broken)
            finally:
                if self.is_sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")

    def dispose(self) -> None:
        self.engine.dispose()


class ForeignKeyCheckFailed(RuntimeError):
    def __init__(self, rows):
        self.rows = rows
        first = ", ".join(f"{r[0]} row {r[1]} -> {r[2]}" for r in rows[:5])
        super().__init__(f"foreign key check failed for {len(rows)} row(s): {first}")


def _create_engine(url: str, **options) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, **options)
        _make_sqlite_transactional(engine, memory=":memory:" in url or url in ("sqlite://", "sqlite:///"))
        return engine
    options.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **options)


def _make_sqlite_transactional(engine: Engine, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # writers take the write lock up front (no deadlocking lock upgrades); readers do not
        read_only = conn.get_execution_options().get("metacrm_read_only")
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
