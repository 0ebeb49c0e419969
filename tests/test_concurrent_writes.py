"""Writers that get in each other's way: a deadlock, a serialization failure or a busy SQLite
database is retried by the engine (the user never sees it), and rollups moved by delta count
every child exactly once, also when a write had to be run again (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

import sqlalchemy as sa

from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.engine.config import Settings
from metacrm.engine.storage.database import Timeouts
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

ACCOUNT = """
name: account
fields:
  - {name: name, type: text}
  - {name: deals, type: rollup, rollup: {object: deal, via: account, function: count}}
  - {name: total, type: rollup, rollup: {object: deal, via: account, function: sum, field: amount}}
  - {name: biggest, type: rollup, rollup: {object: deal, via: account, function: max, field: amount}}
"""

DEAL = """
name: deal
fields:
  - {name: name, type: text}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: decimal, precision: 12, scale: 2}
"""


class Retried(logging.Handler):
    """Sets an event when the engine logs that it runs a write again."""

    def __init__(self):
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record):
        if "retrying" in record.getMessage():
            self.seen.set()


def _accounts(runtime):
    table = runtime.tables(runtime.model)["account"]
    with runtime.db.read() as conn:
        return {row.id: (row.deals, row.total) for row in conn.execute(sa.select(table.c.id, table.c.deals, table.c.total))}


def test_a_write_that_lost_a_deadlock_is_run_again_and_counted_once(runtime, records, db_url, monkeypatch, caplog):
    install(runtime, ACCOUNT, DEAL)
    first, second = sorted(records.bulk_create("account", [{"name": "a"}, {"name": "b"}], actor=SYSTEM).ids)
    # SQLite: "database is locked" after half a second
    lock = Settings() if runtime.db.is_postgresql else Settings(timeouts=Timeouts(lock=0.5))
    writer_runtime = Runtime.open(db_url, settings=lock)
    writer = RecordService(writer_runtime)
    retried = Retried()
    caplog.set_level(logging.INFO, logger="metacrm.records")
    logging.getLogger("metacrm.records").addHandler(retried)
    done: dict = {}

    def write():
        try:
            done["result"] = writer.bulk_create("deal", [{"name": "x", "account": first, "amount": "1.50"},
                                                         {"name": "y", "account": second, "amount": "2.25"}], actor=SYSTEM)
        except Exception as exc:  # reported below
            done["error"] = exc

    accounts = runtime.tables(runtime.model)["account"]
    try:
        with runtime.db.engine.connect() as other:
            transaction = other.begin()
            if runtime.db.is_postgresql:  # the writer, not this session, is the one PostgreSQL aborts
                other.execute(sa.text("SET LOCAL deadlock_timeout = '30s'"))
            other.execute(sa.select(accounts.c.id).where(accounts.c.id == second).with_for_update())
            if not runtime.db.is_postgresql:
                other.execute(sa.update(accounts).where(accounts.c.id == second).values(name="b"))
            thread = threading.Thread(target=write)
            thread.start()
            if runtime.db.is_postgresql:
                # the writer has inserted the first deal (a key share lock on `first`) and waits for `second`
                for _ in range(600):
                    if other.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                        break
                    thread.join(0.05)
                other.execute(sa.select(accounts.c.id).where(accounts.c.id == first).with_for_update())  # deadlock
            while not retried.seen.is_set() and thread.is_alive():
                retried.seen.wait(0.05)
            transaction.commit()
        thread.join(60)
    finally:
        logging.getLogger("metacrm.records").removeHandler(retried)
        writer_runtime.close()
    assert "error" not in done, done
    assert retried.seen.is_set() and done["result"].written == 2
    assert _accounts(runtime) == {first: (1, Decimal("1.50")), second: (1, Decimal("2.25"))}


def test_concurrent_bulk_creates_under_the_same_parents_both_succeed(runtime, records):
    install(runtime, ACCOUNT, DEAL)
    parents = sorted(records.bulk_create("account", [{"name": f"a{i}"} for i in range(20)], actor=SYSTEM).ids)
    barrier = threading.Barrier(2)
    outcomes: dict = {}

    def load(name: str, order: list[str]):
        barrier.wait(30)
        try:
            for round_ in range(3):
                rows = [{"name": f"{name}{round_}-{k}", "account": p, "amount": "1.00"}
                        for k, p in enumerate(order * 5)]
                assert records.bulk_create("deal", rows, actor=SYSTEM).written == len(rows)
            outcomes[name] = "ok"
        except Exception as exc:  # reported below
            outcomes[name] = exc

    threads = [threading.Thread(target=load, args=("up", parents)),
               threading.Thread(target=load, args=("down", parents[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == {"up": "ok", "down": "ok"}
    assert set(_accounts(runtime).values()) == {(30, Decimal("30.00"))}


def test_count_and_sum_rollups_move_by_delta_without_reading_the_children_again(runtime, records):
    install(runtime, ACCOUNT.replace(
        "  - {name: biggest, type: rollup, rollup: {object: deal, via: account, function: max, field: amount}}\n", ""),
        DEAL.replace("target: account}", "target: account, on_delete: set_null}"))
    a, b, c = sorted(records.bulk_create("account", [{"name": n} for n in "abc"], actor=SYSTEM).ids)
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(runtime.db.engine, "before_cursor_execute", listener)
    try:
        ids = records.bulk_create("deal", [{"name": f"d{k}", "account": (a, b)[k % 2], "amount": f"{k}.25"}
                                           for k in range(10)], all_or_none=True, actor=SYSTEM).ids
        assert _accounts(runtime) == {a: (5, Decimal("21.25")), b: (5, Decimal("26.25")), c: (0, Decimal("0.00"))}
        # move two deals to another account, change an amount, clear a lookup
        records.bulk_update("deal", [{"id": ids[0], "account": c}, {"id": ids[1], "amount": "0.01"},
                                     {"id": ids[2], "account": None}, {"id": ids[3], "account": c, "amount": None}],
                            all_or_none=True, actor=SYSTEM)
        assert _accounts(runtime) == {a: (3, Decimal("18.75")), b: (4, Decimal("21.76")), c: (2, Decimal("0.25"))}
        records.delete("deal", ids[4], actor=SYSTEM)
        records.delete("account", b, actor=SYSTEM)  # its deals lose their account: no other account moves
    finally:
        sa.event.remove(runtime.db.engine, "before_cursor_execute", listener)
    assert _accounts(runtime) == {a: (2, Decimal("14.50")), c: (2, Decimal("0.25"))}
    rollup_updates = [s for s in seen if s.startswith("UPDATE account") and ("deals" in s or "total" in s)]
    assert rollup_updates and not [s for s in rollup_updates if "FROM deal" in s]
