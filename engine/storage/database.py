"""Connecting to SQLite or PostgreSQL, with the same transactional behaviour on both.

pysqlite's default transaction handling commits before DDL, which would make schema
changes non-atomic; we turn it off and emit BEGIN ourselves (as SQLAlchemy's docs
recommend) so that DDL and data changes commit or roll back together on SQLite too.

No statement waits without bound: every connection gets a statement timeout and a lock
timeout (PostgreSQL `statement_timeout`/`lock_timeout`; SQLite `busy_timeout` and an
interrupting progress handler), and connecting gives up after a connect timeout.
`unavailable_reason` tells the errors these produce (and a lost server) from bugs, so
the API can answer 503 instead of 500.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DEFAULT_URL = "sqlite:///metacrm.db"


MAX_SECONDS = 2_000_000  # PostgreSQL takes timeouts in milliseconds up to 2**31 - 1


class SettingError(ValueError):
    """A setting (from the environment, see engine/config.py) is not usable."""


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, on how long one statement may wait (0 = no bound).

    `statement`: how long one statement may run; `lock`: how long it may wait for a lock
    held by another transaction (a row lock on PostgreSQL, the write lock on SQLite);
    `connect`: how long opening a connection may take (PostgreSQL).
    """

    statement: float = 30.0
    lock: float = 10.0
    connect: float = 10.0

    #: the environment variables that set them (read by engine/config.py)
    ENV = {"statement": "METACRM_STATEMENT_TIMEOUT", "lock": "METACRM_LOCK_TIMEOUT",
           "connect": "METACRM_CONNECT_TIMEOUT"}


#: Connections each process keeps (Settings.pool_size): the API server runs at most this many
#: requests at once in its thread pool, so a request never waits for a connection that another
#: request in the same process holds (a few more may open for short bursts).
DEFAULT_POOL_SIZE = 10
MAX_POOL_SIZE = 1000


def database_url(url: str | None = None) -> str:
    """`url` (else a SQLite file in the working directory), with postgresql:// and postgres://
    meaning psycopg 3 (SQLAlchemy would pick psycopg2, which metacrm does not install)."""
    url = url or DEFAULT_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An Engine plus the few facts about its dialect that the layers above need."""

    def __init__(self, url: str | None = None, *, timeouts: Timeouts | None = None,
                 pool_size: int = DEFAULT_POOL_SIZE, **engine_options):
        """Settings come from the caller (engine/config.py's Settings via Runtime.open), never
        from the environment; what is not given takes its documented default."""
        self.url = database_url(url)
        self.timeouts = timeouts or Timeouts()
        self.pool_size = engine_options.setdefault("pool_size", pool_size)
        if ":memory:" in self.url or self.url in ("sqlite://", "sqlite:///"):
            engine_options.pop("pool_size")  # one shared connection: no pool to size
        else:
            engine_options.setdefault("max_overflow", max(2, self.pool_size // 2))
        self.engine: Engine = _create_engine(self.url, self.timeouts, **engine_options)
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
            conn.execution_options(metacrm_unbounded=True)  # a table rewrite may rightly outlast a request
            try:
                with conn.begin():
                    if self.is_postgresql:
                        conn.execute(sa.select(sa.func.set_config("statement_timeout", "0", True)))
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


def serialise(conn: Connection, key: int) -> None:
    """Hold `key` until `conn`'s transaction ends, so that one process at a time passes
    (PostgreSQL: an advisory lock; SQLite: writers already hold the database's write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


class ForeignKeyCheckFailed(RuntimeError):
    def __init__(self, rows):
        self.rows = rows
        first = ", ".join(f"{r[0]} row {r[1]} -> {r[2]}" for r in rows[:5])
        super().__init__(f"foreign key check failed for {len(rows)} row(s): {first}")


def _create_engine(url: str, timeouts: Timeouts, **options) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, **options)
        _make_sqlite_transactional(engine, memory=":memory:" in url or url in ("sqlite://", "sqlite:///"),
                                   timeouts=timeouts)
        return engine
    options.setdefault("pool_pre_ping", True)  # a connection the server dropped is replaced, not used
    if url.startswith("postgresql"):
        options["connect_args"] = {**_postgresql_timeouts(url, timeouts), **options.get("connect_args", {})}
    return sa.create_engine(url, **options)


def _postgresql_timeouts(url: str, timeouts: Timeouts) -> dict:
    """Session settings sent when connecting (libpq `options`), added to any the URL has."""
    settings = " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in
                        (("statement_timeout", timeouts.statement), ("lock_timeout", timeouts.lock)))
    given = sa.engine.make_url(url).query.get("options")
    args = {"options": f"{given} {settings}" if isinstance(given, str) else settings}
    if timeouts.connect:
        args["connect_timeout"] = max(1, round(timeouts.connect))  # libpq counts whole seconds
    return args


def _make_sqlite_transactional(engine: Engine, memory: bool, timeouts: Timeouts) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        if timeouts.statement:
            info = record.info
            # called every 10,000 VM steps: a true answer interrupts the running statement
            dbapi_connection.set_progress_handler(
                lambda: time.monotonic() > info.get("metacrm_deadline", float("inf")), 10_000)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(timeouts.lock * 1000) if timeouts.lock else 2**31 - 1}")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # writers take the write lock up front (no deadlocking lock upgrades); readers do not
        read_only = conn.get_execution_options().get("metacrm_read_only")
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    if timeouts.statement:
        @event.listens_for(engine, "before_cursor_execute")
        def start_clock(conn, cursor, statement, parameters, context, executemany):
            if conn.get_execution_options().get("metacrm_unbounded"):
                conn.connection.info.pop("metacrm_deadline", None)
            else:
                conn.connection.info["metacrm_deadline"] = time.monotonic() + timeouts.statement

        @event.listens_for(engine, "after_cursor_execute")
        def stop_clock(conn, cursor, statement, parameters, context, executemany):
            conn.connection.info.pop("metacrm_deadline", None)

        @event.listens_for(engine, "handle_error")
        def stop_clock_on_error(context):  # a failed statement leaves no deadline behind
            try:
                context.connection.connection.info.pop("metacrm_deadline", None)
            except (AttributeError, sa.exc.SQLAlchemyError):  # no connection, or it is gone
                pass


#: PostgreSQL SQLSTATEs that are the database's state, not a bug: lock_not_available,
#: deadlock_detected, serialization_failure; query_canceled (statement_timeout); the
#: server going away (admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections).
_PG_STATES = {"55P03": "busy", "40P01": "busy", "40001": "busy", "57014": "timeout",
              "57P01": "unavailable", "57P02": "unavailable", "57P03": "unavailable", "53300": "unavailable"}
_SQLITE_ERRORS = {"SQLITE_BUSY": "busy", "SQLITE_LOCKED": "busy", "SQLITE_INTERRUPT": "timeout",
                  "SQLITE_CANTOPEN": "unavailable", "SQLITE_IOERR": "unavailable", "SQLITE_FULL": "unavailable",
                  "SQLITE_READONLY": "unavailable"}


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database could not serve a statement, if that is a passing state of the database
    rather than a bug: "busy" (a lock wait timed out, a deadlock), "timeout" (the statement ran
    too long) or "unavailable" (unreachable, restarting, out of connections); else None."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return "busy"
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    if exc.connection_invalidated:
        return "unavailable"
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if state is not None:
        return _PG_STATES.get(state) or ("unavailable" if state.startswith("08") else None)
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return _SQLITE_ERRORS.get("_".join(name.split("_")[:2]))  # SQLITE_IOERR_SHORT_READ -> SQLITE_IOERR
    # psycopg raises a bare OperationalError (no SQLSTATE) when it cannot connect at all
    return "unavailable" if isinstance(exc, sa.exc.OperationalError) else None
