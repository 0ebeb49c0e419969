"""Every list a user gets without choosing a view, and every list view, reads its first page
straight from an index whose column directions match the ORDER BY: no sort step, so a page
costs the same at a million rows as at a hundred.

Checked with the database's own planner (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with
sequential and bitmap scans discouraged, since a small test table would otherwise be read whole).
"""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import sqlalchemy as sa

from metacrm.engine.records.query import Query
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: amount, type: currency}
  - {name: region, type: text}
layouts:
  list_views:
    - {name: biggest, columns: [name, amount], sort: [-amount]}
    - {name: by_region, columns: [name], filter: [[region, eq, north]], sort: [-amount, name]}
"""


@contextmanager
def captured_selects(runtime):
    """The SELECT statements (with parameters) the engine sends while the block runs."""
    seen: list[tuple[str, object]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        flat = " ".join(statement.split())
        if flat.upper().startswith("SELECT") and " FROM deal " in flat + " ":
            seen.append((statement, parameters))

    sa.event.listen(runtime.db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(runtime.db.engine, "before_cursor_execute", listen)


def plan_of(runtime, statement: str, parameters) -> str:
    """The database's plan for one statement, as text."""
    with runtime.db.engine.connect() as conn:
        if runtime.db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return "\n".join(str(r[-1]) for r in rows)
        with conn.begin():
            conn.exec_driver_sql("ANALYZE deal")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return "\n".join(r[0] for r in rows)


def first_page_plan(runtime, records, query: Query) -> str:
    with captured_selects(runtime) as seen:
        page = records.list("deal", query, actor=SYSTEM)
    assert page.records, "the list should return rows"
    statement, parameters = next((s, p) for s, p in seen if "ORDER BY" in s)
    return plan_of(runtime, statement, parameters)


def assert_index_scan_without_sort(runtime, plan: str) -> None:
    if runtime.db.is_sqlite:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        first = plan.splitlines()[1].strip() if plan.startswith("Limit") else plan.splitlines()[0]
        assert "Index Scan" in first, plan
        assert "Sort" not in plan, plan  # neither a full nor an incremental sort


def seed(records, n: int = 120) -> None:
    records.bulk_create("deal", [
        {"name": f"deal {i:03}", "amount": str(Decimal(i * 37 % 1000)) if i % 7 else None,
         "region": "north" if i % 2 else "south"} for i in range(n)], actor=SYSTEM)


def test_default_list_order_reads_an_index(runtime, records):
    install(runtime, DEAL)
    seed(records)
    plan = first_page_plan(runtime, records, Query(limit=20))
    assert_index_scan_without_sort(runtime, plan)
    ix = next(ix for ix in runtime.model.object("deal").indexes if ix.columns == ("created_at", "id"))
    assert ix.descending == ("created_at",)


def test_default_order_pages_newest_first(runtime, records):
    install(runtime, DEAL)
    first = records.create("deal", {"name": "old"}, actor=SYSTEM)
    second = records.create("deal", {"name": "new"}, actor=SYSTEM)
    names = [r["name"] for r in records.list("deal", Query(limit=10), actor=SYSTEM).records]
    assert names.index(second["name"]) < names.index(first["name"])


def test_mixed_direction_view_reads_a_matching_index(runtime, records):
    install(runtime, DEAL)
    seed(records)
    assert_index_scan_without_sort(runtime, first_page_plan(runtime, records, Query(sort=("-amount",), limit=20)))
    filtered = Query(filter=[["region", "eq", "north"]], sort=("-amount", "name"), limit=20)
    assert_index_scan_without_sort(runtime, first_page_plan(runtime, records, filtered))


def test_view_index_is_deep_paged_in_order(runtime, records):
    """The directed index changes nothing about what the pages contain: every row once, in order."""
    install(runtime, DEAL)
    seed(records, 75)
    seen, cursor = [], None
    while True:
        page = records.list("deal", Query(sort=("-amount",), limit=10, cursor=cursor), actor=SYSTEM)
        seen += page.records
        cursor = page.next_cursor
        if not cursor:
            break
    assert len({r["id"] for r in seen}) == 75
    amounts = [r["amount"] for r in seen]
    nulls = [a for a in amounts if a is None]
    assert amounts[: len(nulls)] == nulls  # nulls first when descending
    values = [Decimal(a) for a in amounts[len(nulls):]]
    assert values == sorted(values, reverse=True)


def test_plan_adds_indexes_an_older_schema_lacks(runtime, records):
    """A database made before the engine declared these indexes gets them from a plan + apply
    (a safe change), and its lists are index-backed afterwards."""
    install(runtime, DEAL)
    seed(records)
    names = [ix.name for ix in runtime.model.object("deal").indexes if ix.descending]
    with runtime.db.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP INDEX {name}"))
    plan = runtime.plan([])
    added = [c for c in plan.changes if c.action == "add_index"]
    assert {c.index.name for c in added} == set(names)
    assert all(c.safety == "safe" for c in added)
    runtime.apply(plan)
    have = {i["name"] for i in sa.inspect(runtime.db.engine).get_indexes("deal")}
    assert set(names) <= have
    assert runtime.plan([]).is_empty
    assert_index_scan_without_sort(runtime, first_page_plan(runtime, records, Query(limit=20)))
    assert len(records.list("deal", Query(limit=500), actor=SYSTEM).records) == 120


def test_plan_drops_the_undirected_index_an_older_engine_made(runtime, records):
    """An older engine indexed `sort: [-amount]` as (amount, id); that index serves no list
    now and only slows writes, so the plan that adds the directed one drops it."""
    install(runtime, DEAL)
    seed(records, 30)
    directed = next(ix for ix in runtime.model.object("deal").indexes if ix.columns == ("amount", "id"))
    table = runtime.tables()["deal"]
    with runtime.db.engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {directed.name}"))
        sa.Index("ix_deal_0123abcd", table.c.amount, table.c.id).create(conn)
    plan = runtime.plan([])
    assert sorted((c.action, c.index.name) for c in plan.changes) == [
        ("add_index", directed.name), ("drop_index", "ix_deal_0123abcd")]
    runtime.apply(plan)
    have = {i["name"] for i in sa.inspect(runtime.db.engine).get_indexes("deal")}
    assert directed.name in have and "ix_deal_0123abcd" not in have
    assert runtime.plan([]).is_empty
    assert len(records.list("deal", Query(sort=("-amount",), limit=100), actor=SYSTEM).records) == 30


def test_indexes_of_fields_and_other_names_are_left_alone(runtime, records):
    install(runtime, DEAL.replace("  - {name: region, type: text}",
                                  "  - {name: region, type: text}\n  - {name: deadbeef, type: text, indexed: true}"))
    table = runtime.tables()["deal"]
    with runtime.db.engine.begin() as conn:
        sa.Index("ix_deal_by_hand", table.c.region).create(conn)
    assert runtime.plan([]).is_empty


def test_indexes_keep_their_directions_through_a_table_rebuild(runtime, records):
    """SQLite alters a table by rebuilding it, and its rebuild re-creates indexes without
    their column directions; the apply puts them back, so lists stay index-backed."""
    install(runtime, DEAL)
    seed(records)
    install(runtime, DEAL.replace("{name: region, type: text}", "{name: region, type: text, max_length: 20}")
            .replace("{name: name, type: text, required: true}", "{name: name, type: text, required: true, unique: true}"))
    assert_index_scan_without_sort(runtime, first_page_plan(runtime, records, Query(limit=20)))
    assert_index_scan_without_sort(runtime, first_page_plan(runtime, records, Query(sort=("-amount",), limit=20)))


def test_own_scope_default_list_reads_an_index(runtime, records):
    """A user who may read only their own records gets the default list from an index on
    (owner, created_at DESC, id): no sort over all of their records, however many they own."""
    from metacrm.engine import identity
    from metacrm.engine.identity.actor import Actor

    install(runtime, DEAL + "permissions:\n  rep: {create: true, read: own, edit: own}\n")
    with runtime.db.begin() as conn:
        reps = [identity.create_user(conn, f"Rep {i}", f"rep{i}@example.com", roles=["rep"]).id for i in range(2)]
    records.bulk_create("deal", [{"name": f"deal {i:03}", "owner": reps[i % 2]} for i in range(60)], actor=SYSTEM)
    rep = Actor(user_id=reps[0], roles=frozenset({"rep"}))
    with captured_selects(runtime) as seen:
        page = records.list("deal", Query(limit=10), actor=rep)
    assert len(page.records) == 10 and {r["owner"] for r in page.records} == {reps[0]}
    statement, parameters = next((s, p) for s, p in seen if "ORDER BY" in s)
    assert_index_scan_without_sort(runtime, plan_of(runtime, statement, parameters))
