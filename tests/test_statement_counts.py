"""Bulk writes are set-based: the number of SQL statements a bulk create or update issues does
not grow with the number of rows (SQLite and PostgreSQL). Counted with a real cursor listener on
an object that has every per-row cost the engine knows: a rule, a stored formula, a time rule
(timer), a lookup read by a relation-path formula, a rollup on its parent and an approval process."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import sqlalchemy as sa
from sqlalchemy import event

from metacrm.engine import identity
from metacrm.engine.automation.tables import timers
from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.conftest import install

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: tier, type: text}
  - {name: total, type: rollup, rollup: {object: deal, via: account, function: sum, field: amount}}
  - {name: deals, type: rollup, rollup: {object: deal, via: account, function: count}}
  - {name: biggest, type: rollup, rollup: {object: deal, via: account, function: max, field: amount}}
"""

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: integer}
  - {name: close_date, type: date}
  - {name: stage, type: text}
  - {name: note, type: text}
  - {name: double, type: formula, result_type: integer, expression: "amount * 2"}
  - {name: account_tier, type: formula, result_type: text, expression: "account.tier"}
automations:
  - name: tag_big
    trigger: {on: saved}
    condition: "amount > 50"
    actions:
      - set: {note: "'big'"}
  - name: remind
    trigger: {on: time, field: close_date, offset: -3d}
    actions:
      - set: {note: "'soon'"}
approval_processes:
  - name: check
    entry_condition: "amount > 1000"
    steps:
      - {name: manager, approvers: [manager]}
"""

@contextmanager
def counting(engine: sa.Engine):
    """Count every statement sent to the database (executemany counts once: one round of SQL)."""
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _statements(runtime, records, n: int, actor: Actor) -> tuple[int, int]:
    # the execution log flushes its buffer once its oldest line is a second old: on a slow
    # machine that may fall inside one count and not the other, so it waits for the size limit
    runtime.automation_log.max_age = float("inf")
    parents = records.bulk_create("account", [{"name": f"a{i}", "tier": "gold"} for i in range(n // 2)], actor=SYSTEM).ids
    rows = [{"name": f"d{i}", "account": parents[i // 2], "amount": i % 50, "close_date": date(2026, 5, 1 + i % 20),
             "stage": "new"} for i in range(n)]
    with counting(runtime.db.engine) as created:
        result = records.bulk_create("deal", rows, actor=actor, all_or_none=True)
    assert result.written == n
    changes = [{"id": i, "amount": k + 100, "close_date": date(2026, 6, 1 + k % 20), "stage": "won"}
               for k, i in enumerate(result.ids)]
    with counting(runtime.db.engine) as updated:
        assert records.bulk_update("deal", changes, actor=actor, all_or_none=True).written == n
    return len(created), len(updated)


def test_bulk_statements_do_not_grow_with_rows(runtime, records):
    install(runtime, ACCOUNT, DEAL)
    # the execution log's flush by age (one INSERT once its oldest line is a second old) depends on
    # the machine's speed, not on the rows: keep it out of the counts
    runtime.automation_log.max_age = 3600
    with runtime.db.begin() as conn:  # a user, not the engine: approval locks apply to them
        admin = Actor(user_id=identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"]).id,
                      roles=frozenset({"admin"}))
    small = _statements(runtime, records, 10, admin)
    large = _statements(runtime, records, 100, admin)
    print(f"\nstatements {runtime.db.engine.dialect.name}: create 10→{small[0]} 100→{large[0]}; "
          f"update 10→{small[1]} 100→{large[1]}")
    assert large == small
    # the work was done: rollups, formulas, timers and the rule
    with runtime.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(timers)).scalar_one() == 110
        account = runtime.tables(runtime.model)["account"]
        deals, total = conn.execute(sa.select(sa.func.sum(account.c.deals), sa.func.sum(account.c.total))).one()
    assert (deals, total) == (110, sum(range(100, 110)) + sum(range(100, 200)))


def _claim_statements(runtime, n: int) -> int:
    from datetime import datetime, timezone

    from metacrm.engine.automation.worker import Worker
    from metacrm.engine.expressions.evaluator import FixedClock

    due = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with runtime.db.begin() as conn:
        conn.execute(sa.delete(timers))
        conn.execute(timers.insert(), [{"object": "deal", "rule": "remind", "record_id": f"00000000-0000-0000-0000-{k:012d}",
                                        "due_at": due} for k in range(n)])
    worker = Worker(runtime, clock=FixedClock(datetime(2026, 2, 1, tzinfo=timezone.utc)), batch=500)
    with counting(runtime.db.engine) as seen:
        claimed = worker.claim(timers, "due_at", lambda now: timers.c.due_at <= now, [timers.c.due_at])
    assert len(claimed) == n and all(row.attempts == 0 for row in claimed)  # as before this claim
    with runtime.db.read() as conn:  # the claim counts as an attempt and holds a lease
        assert conn.execute(sa.select(sa.func.count()).select_from(timers).where(
            timers.c.attempts == 1, timers.c.locked_until.is_not(None))).scalar_one() == n
    return len([s for s in seen if not s.startswith("BEGIN")])


def test_worker_claims_a_batch_in_constant_statements(runtime):
    install(runtime, ACCOUNT, DEAL)
    small, large = _claim_statements(runtime, 5), _claim_statements(runtime, 100)
    print(f"\nclaim statements {runtime.db.engine.dialect.name}: 5→{small} 100→{large}")
    assert small == large == 1  # one UPDATE ... RETURNING, not a SELECT and then an UPDATE
