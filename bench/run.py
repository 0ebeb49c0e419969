#!/usr/bin/env python
"""metacrm benchmark: the record engine against raw SQLAlchemy Core, on SQLite and PostgreSQL.

    python bench/run.py [--quick] [--pg-url URL] [--no-docs] [--docs PATH]

One run measures, on a temporary SQLite file and on a fresh PostgreSQL database:

1. single-record creates through RecordService.create (validation rule, formula, history on)
   vs raw Core inserts of the same rows, one transaction per record in both;
2. RecordService.bulk_create vs one raw executemany of the same rows in one transaction;
3. a filtered, sorted first page and a deep keyset page over a table of 1M rows
   vs the same SELECT executed directly;
4. adding a nullable field to the 1M-row table through runtime.plan + runtime.apply
   (PostgreSQL: pg_class.relfilenode must not change, i.e. no table rewrite).

It prints a table and (re)writes docs/performance.md (not with --quick unless --docs is given).
The PostgreSQL database is created with an AUTOCOMMIT admin connection and dropped at the end;
if PostgreSQL is unreachable only SQLite runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from textwrap import dedent
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

import automation  # noqa: E402  (bench/automation.py)
from pgdb import pg_create, pg_drop  # noqa: E402  (bench/pgdb.py)
from metacrm.engine.records import query as q  # noqa: E402
from metacrm.engine.storage.ids import new_id  # noqa: E402
from metacrm.engine.records.query import Query  # noqa: E402
from metacrm.engine.records.service import RecordService  # noqa: E402
from metacrm.engine.runtime import Runtime  # noqa: E402
from metacrm.metamodel.loader import load_documents  # noqa: E402
from metacrm.engine.identity.actor import SYSTEM

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_DOCS = ROOT / "docs" / "performance.md"

FULL = {"single": 10_000, "bulk": 100_000, "list": 1_000_000}
QUICK = {k: v // 10 for k, v in FULL.items()}

TARGETS = {  # benchmark key -> (max engine/raw ratio, description)
    "single": 1.5,
    "bulk": 2.0,
    "first_page": 1.3,
    "deep_page": 1.3,
    "rules_no_match": 1.2,
    "rule_matches": 1.5,
}
#: marked sections of docs/performance.md that a rewrite keeps (appended after this run's output)
KEPT_SECTIONS = ("issue9-status", "crm-bench", "api-bench")
ADD_FIELD_TARGET_S = 1.0  # "well under a second"

OBJECT_YAML = """
name: {name}
history: true
fields:
  - {{name: name, type: text, required: true}}
  - {{name: stage, type: picklist, options: [new, won, lost], default: new}}
  - {{name: amount, type: currency, min: 0}}
  - {{name: probability, type: percent}}
  - {{name: weighted, type: formula, result_type: currency, expression: "amount * probability / 100"}}
  - {{name: loss_reason, type: text}}
{extra}validation_rules:
  - {{name: lost_needs_reason, error_when: "stage == 'lost' and is_blank(loss_reason)", message: "Give a reason"}}
layouts:
  list_views:
    - {{name: open, columns: [name, amount], filter: [[stage, eq, new]], sort: [-amount]}}
"""

LIST_FILTER = [["stage", "eq", "new"]]
LIST_SORT = ("-amount",)
PAGE = 50
CENT = Decimal("0.01")


def object_documents(name: str, extra_field: str | None = None):
    extra = f"  - {{name: {extra_field}, type: text}}\n" if extra_field else ""
    return load_documents([(f"{name}.yaml", dedent(OBJECT_YAML.format(name=name, extra=extra)))])


# -- data --------------------------------------------------------------------------------------


class Data:
    """Deterministic rows: `api` is what a client sends the engine, `typed` the same values typed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def row(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        rng = self.rng
        r = rng.random()
        stage = "new" if r < 0.65 else "won" if r < 0.85 else "lost"
        amount = Decimal(rng.randrange(0, 100_000_000)).scaleb(-2)
        probability = Decimal(rng.randrange(0, 101))
        reason = "price" if stage == "lost" else None
        api = {"name": f"Deal {i}", "stage": stage, "amount": str(amount), "probability": int(probability),
               "loss_reason": reason}
        typed = {"name": api["name"], "stage": stage, "amount": amount,
                 "probability": probability.quantize(CENT), "loss_reason": reason}
        return api, typed

    def rows(self, n: int, start: int = 0):
        return [self.row(start + i) for i in range(n)]


def weighted(typed: dict[str, Any]) -> Decimal:
    return (typed["amount"] * typed["probability"] / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def raw_record(typed: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The full row the engine writes: system columns, field values, the computed formula."""
    return {"id": new_id(), "created_at": now, "created_by": None, "updated_at": now, "updated_by": None,
            "owner": None, "version": 1, **typed, "weighted": weighted(typed)}


# -- timing ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Result:
    backend: str
    key: str
    label: str
    engine_s: float
    raw_s: float
    unit: str  # how the seconds are to be read
    detail: str = ""

    @property
    def ratio(self) -> float:
        return self.engine_s / self.raw_s if self.raw_s else float("inf")

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.key)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else round(self.ratio, 2) <= self.target


@dataclass
class AddField:
    backend: str
    rows: int
    plan_s: float
    apply_s: float
    raw_alter_s: float
    rewritten: bool | None
    evidence: str

    @property
    def total_s(self) -> float:
        return self.plan_s + self.apply_s


@dataclass
class BackendReport:
    backend: str
    version: str
    settings: dict[str, str] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    add_field: AddField | None = None
    notes: list[str] = field(default_factory=list)
    plans: dict[str, list[str]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    profile_n: int = 0
    load_s: float | None = None
    error: str | None = None


# -- benchmarks --------------------------------------------------------------------------------


def empty_table(engine: sa.Engine, table: sa.Table) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f'TRUNCATE "{table.name}"'))
        else:
            conn.execute(table.delete())


def bench_single(rt: Runtime, rs: RecordService, report: BackendReport, n: int) -> None:
    """n engine creates vs n raw inserts, one transaction each, interleaved in rounds."""
    table, engine = rt.tables()["deal"], rt.db.engine
    data = Data(1)
    rows = data.rows(n)

    def engine_part(part):
        for api, _ in part:
            rs.create("deal", api, actor=SYSTEM)

    def raw_part(part):
        for _, typed in part:
            record = raw_record(typed, datetime.now(timezone.utc))
            with engine.begin() as conn:
                conn.execute(table.insert(), record)

    # warm up both paths (statement caches, connection pool) outside the timing
    warm = Data(99).rows(50)
    engine_part(warm)
    raw_part(warm)
    empty_table(engine, table)

    rounds = 10
    size = max(1, n // rounds)
    engine_s = raw_s = 0.0
    for r in range(rounds):
        part = rows[r * size:(r + 1) * size]
        if r % 2 == 0:
            engine_s += timed(lambda: engine_part(part))
            raw_s += timed(lambda: raw_part(part))
        else:
            raw_s += timed(lambda: raw_part(part))
            engine_s += timed(lambda: engine_part(part))
    total = size * rounds
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    if count != 2 * total:
        report.notes.append(f"single creates: expected {2 * total} rows, found {count}")
    report.results.append(Result(
        report.backend, "single", f"{total:,} single creates (1 txn each)", engine_s, raw_s, "total",
        f"{engine_s / total * 1e6:.0f} µs vs {raw_s / total * 1e6:.0f} µs per record"))
    log(f"single: engine {engine_s:.2f}s raw {raw_s:.2f}s ratio {engine_s / raw_s:.2f}")


def bench_bulk(rt: Runtime, rs: RecordService, report: BackendReport, n: int, reps: int) -> None:
    """bulk_create of n rows vs one raw executemany in one transaction; best of `reps`."""
    table, engine = rt.tables()["deal"], rt.db.engine
    rows = Data(2).rows(n)
    api_rows = [api for api, _ in rows]

    def engine_run():
        result = rs.bulk_create("deal", api_rows, actor=SYSTEM)
        if result.written != n or result.errors:
            raise RuntimeError(f"bulk_create wrote {result.written} of {n}: {list(result.errors.items())[:3]}")

    def raw_run():
        now = datetime.now(timezone.utc)
        records = [raw_record(typed, now) for _, typed in rows]
        with engine.begin() as conn:
            conn.execute(table.insert(), records)

    engine_times, raw_times = [], []
    for r in range(reps):
        order = [(engine_run, engine_times), (raw_run, raw_times)]
        if r % 2:
            order.reverse()
        for fn, bucket in order:
            empty_table(engine, table)
            bucket.append(timed(fn))
    empty_table(engine, table)
    engine_s, raw_s = min(engine_times), min(raw_times)
    report.results.append(Result(
        report.backend, "bulk", f"bulk create of {n:,} rows (1 txn)", engine_s, raw_s, f"best of {reps}",
        f"{n / engine_s:,.0f} vs {n / raw_s:,.0f} rows/s"))
    log(f"bulk: engine {engine_s:.2f}s raw {raw_s:.2f}s ratio {engine_s / raw_s:.2f} "
        f"(all: engine {[round(t, 2) for t in engine_times]}, raw {[round(t, 2) for t in raw_times]})")


def profile_single(rt: Runtime, rs: RecordService, report: BackendReport, n: int) -> None:
    """cProfile n engine creates and keep the top functions by cumulative time (for the docs)."""
    import cProfile
    import pstats

    rows = Data(4).rows(n)
    profiler = cProfile.Profile()
    profiler.enable()
    for api, _ in rows:
        rs.create("deal", api, actor=SYSTEM)
    profiler.disable()
    empty_table(rt.db.engine, rt.tables()["deal"])
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, ncalls, tottime, cumtime, callers)
    total = max(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "create")
    lines = [f"{'cumulative':>10} {'share':>6} {'per create':>11}  function"]
    ranked = sorted(stats.items(), key=lambda item: -item[1][3])
    shown = 0
    for (filename, line, name), (_, calls, _, cumtime, _) in ranked:
        if cumtime < total * 0.04 or shown >= 18:
            break
        if name.startswith("<") or filename.startswith("<") or "contextlib" in filename or "langhelpers" in filename:
            continue
        where = filename.replace(str(ROOT) + os.sep, "")
        where = where.split("site-packages" + os.sep, 1)[-1]
        lines.append(f"{cumtime:>9.3f}s {cumtime / total:>6.0%} {cumtime / n * 1e6:>8.0f} µs  {where}:{line} {name}"
                     f" ({calls / n:g}x)")
        shown += 1
    report.profile = lines
    report.profile_n = n
    log(f"profiled {n} creates: {total / n * 1e6:.0f} µs each under cProfile")


def load_big(rt: Runtime, report: BackendReport, n: int) -> None:
    """n rows into `bigdeal` with raw SQL (COPY on PostgreSQL, executemany chunks on SQLite)."""
    table, engine = rt.tables()["bigdeal"], rt.db.engine
    data = Data(3)
    now = datetime.now(timezone.utc)
    chunk = 10_000
    start = time.perf_counter()
    if engine.dialect.name == "postgresql":
        columns = [c.name for c in table.columns]
        naive = now.replace(tzinfo=None)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:
                copy_sql = f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN'
                with cur.copy(copy_sql) as copy:
                    for i in range(n):
                        _, typed = data.row(i)
                        record = raw_record(typed, now)
                        record["created_at"] = record["updated_at"] = naive
                        copy.write_row([record[c] for c in columns])
            raw.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'VACUUM ANALYZE "{table.name}"'))
            try:  # flush the load's dirty pages now rather than during the measurements
                conn.execute(sa.text("CHECKPOINT"))
            except sa.exc.DBAPIError:
                pass  # needs superuser (or pg_checkpoint)
    else:
        insert = table.insert()
        for offset in range(0, n, chunk):
            records = [raw_record(data.row(offset + i)[1], now) for i in range(min(chunk, n - offset))]
            with engine.begin() as conn:
                conn.execute(insert, records)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        with engine.connect() as conn:  # move the load out of the WAL file before measuring reads
            conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    report.load_s = time.perf_counter() - start
    log(f"loaded {n:,} rows into bigdeal in {report.load_s:.1f}s")


def _raw_select(table: sa.Table) -> sa.Select:
    """The list view query as one would write it by hand: same WHERE, ORDER BY (nulls as largest)."""
    return (sa.select(table).where(table.c.stage == "new")
            .order_by(table.c.amount.desc().nulls_first(), table.c.id.asc()))


def _explain(conn, statement: sa.Select) -> list[str]:
    if conn.dialect.name == "postgresql":
        sql = statement.compile(conn, compile_kwargs={"literal_binds": True})
        return [r[0] for r in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {sql}")]
    compiled = statement.compile(conn)
    params = compiled.construct_params()
    processed = compiled._bind_processors  # noqa: SLF001 - run the same bind processing as execution
    args = tuple(processed[k](params[k]) if k in processed else params[k] for k in compiled.positiontup)
    return [f"{r[1]}|{r[3]}" for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", args)]


def _repeat(engine_fn, raw_fn, budget_s: float = 8.0, min_reps: int = 5, max_reps: int = 201) -> tuple[float, float, int]:
    """Median of alternating repetitions (after a warm-up of each)."""
    for _ in range(3):
        first = max(timed(engine_fn), timed(raw_fn), 1e-6)
    reps = int(max(min_reps, min(max_reps, budget_s / first)))
    engine_times, raw_times = [], []
    for r in range(reps):
        if r % 2:
            raw_times.append(timed(raw_fn))
            engine_times.append(timed(engine_fn))
        else:
            engine_times.append(timed(engine_fn))
            raw_times.append(timed(raw_fn))
    return statistics.median(engine_times), statistics.median(raw_times), reps


def bench_list(rt: Runtime, rs: RecordService, report: BackendReport, n: int) -> None:
    """First page and a deep keyset page: RecordService.list vs the same SELECT built and run by hand."""
    table, engine = rt.tables()["bigdeal"], rt.db.engine
    obj = rt.model.object("bigdeal")
    keys = q.sort_keys(obj, LIST_SORT)
    report.notes.append("list indexes: " + ", ".join(
        f"{ix.name} on ({', '.join(c + (' DESC' if c in ix.descending else '') for c in ix.columns)})" for ix in obj.indexes))
    limit = PAGE + 1  # the engine reads one row more than a page to know whether there is a next page

    # first page -------------------------------------------------------------------------------
    first_query = Query(filter=LIST_FILTER, sort=LIST_SORT, limit=PAGE)

    def engine_first():
        return rs.list("bigdeal", first_query, actor=SYSTEM)

    def raw_first():  # built per call, as a hand-written request handler would
        statement = _raw_select(table).limit(limit)
        with engine.connect() as conn:
            return conn.execute(statement).all()

    _check_same(report, "first page", engine_first(), raw_first())
    engine_s, raw_s, reps = _repeat(engine_first, raw_first)
    report.results.append(Result(report.backend, "first_page", f"first page ({PAGE} rows) of {n:,}", engine_s, raw_s,
                                 f"median of {reps}", f"{engine_s * 1e3:.2f} ms vs {raw_s * 1e3:.2f} ms"))
    log(f"first page: engine {engine_s * 1e3:.2f}ms raw {raw_s * 1e3:.2f}ms ratio {engine_s / raw_s:.2f}")

    # deep page: the cursor of the row at position `depth` (found once with OFFSET, untimed) ----
    with engine.connect() as conn:
        matching = conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.stage == "new")).scalar_one()
        depth = min(n // 2, matching - PAGE - 1)
        anchor = dict(conn.execute(_raw_select(table).offset(depth - 1).limit(1)).one()._mapping)
    # the cursor is bound to its list (object, sort, filter), as the engine's own cursors are
    cursor = q.encode_cursor(keys, anchor, first_query, "bigdeal")
    deep_query = Query(filter=LIST_FILTER, sort=LIST_SORT, limit=PAGE, cursor=cursor)

    def raw_deep_select(bounded: bool = False) -> sa.Select:
        amount, last_id = anchor["amount"], anchor["id"]
        after = sa.or_(table.c.amount < amount, sa.and_(table.c.amount == amount, table.c.id > last_id))
        statement = _raw_select(table).where(after)
        if bounded:  # a redundant bound the planner can turn into an index range
            statement = statement.where(table.c.amount <= amount)
        return statement.limit(limit)

    def engine_deep():
        return rs.list("bigdeal", deep_query, actor=SYSTEM)

    def raw_deep():  # the same SQL the engine generates: keyset predicate plus the seek bound
        statement = raw_deep_select(bounded=True)
        with engine.connect() as conn:
            return conn.execute(statement).all()

    def raw_deep_unbounded():
        statement = raw_deep_select()
        with engine.connect() as conn:
            return conn.execute(statement).all()

    _check_same(report, "deep page", engine_deep(), raw_deep())
    _check_same(report, "deep page (unbounded raw)", engine_deep(), raw_deep_unbounded())
    engine_s, raw_s, reps = _repeat(engine_deep, raw_deep)
    report.results.append(Result(report.backend, "deep_page",
                                 f"keyset page at row {depth:,} of {matching:,} matching", engine_s, raw_s,
                                 f"median of {reps}", f"{engine_s * 1e3:.2f} ms vs {raw_s * 1e3:.2f} ms"))
    log(f"deep page: engine {engine_s * 1e3:.2f}ms raw {raw_s * 1e3:.2f}ms ratio {engine_s / raw_s:.2f}")
    unbounded_s = statistics.median(timed(raw_deep_unbounded) for _ in range(max(5, reps // 2)))
    report.extra.append(
        f"Deep page, for information: without the redundant seek bound `amount <= {anchor['amount']}` that the "
        f"engine adds to the keyset predicate, the same raw query takes {unbounded_s * 1e3:.2f} ms (the database "
        f"filters every earlier row instead of starting the index scan at the cursor), against "
        f"{raw_s * 1e3:.2f} ms with it and {engine_s * 1e3:.2f} ms through the engine.")
    log(f"deep page, raw without the seek bound: {unbounded_s * 1e3:.2f}ms")

    # the SQL the engine generates, and its plan -----------------------------------------------
    with engine.connect() as conn:
        for name, statement, raw in (("first page", rs.select(obj, table, first_query, actor=SYSTEM).limit(limit), _raw_select(table).limit(limit)),
                                     ("deep page", rs.select(obj, table, deep_query, actor=SYSTEM).limit(limit),
                                      raw_deep_select(bounded=True)),
                                     ("deep page, raw without the bound", None, raw_deep_select())):
            if statement is not None:
                engine_text = " ".join(str(statement.compile(conn)).split())
                raw_text = " ".join(str(raw.compile(conn)).split())
                if engine_text != raw_text:
                    report.notes.append(f"{name}: the engine's SQL differs from the raw SQL:\n    engine: {engine_text}"
                                        f"\n    raw:    {raw_text}")
            shown = statement if statement is not None else raw
            report.plans[f"{name} ({'engine' if statement is not None else 'raw'})"] = (
                [" ".join(str(shown.compile(conn)).split()), ""] + _explain(conn, shown))


def _check_same(report: BackendReport, name: str, page, raw_rows) -> None:
    engine_ids = [r["id"] for r in page.records]
    raw_ids = [r.id for r in raw_rows[:PAGE]]
    if engine_ids != raw_ids:
        report.notes.append(f"{name}: engine and raw returned different rows!")
        log(f"WARNING {name}: engine and raw returned different rows")


def bench_add_field(rt: Runtime, report: BackendReport, n: int) -> None:
    engine = rt.db.engine
    is_pg = engine.dialect.name == "postgresql"

    def storage_id() -> Any:
        with engine.connect() as conn:
            if is_pg:
                return conn.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = 'bigdeal'")).scalar_one()
            return conn.execute(sa.text("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'bigdeal'")).scalar_one()

    before = storage_id()
    start = time.perf_counter()
    plan = rt.plan(object_documents("bigdeal", extra_field="note"))
    plan_s = time.perf_counter() - start
    actions = [c.action for c in plan.changes]
    start = time.perf_counter()
    rt.apply(plan)
    apply_s = time.perf_counter() - start
    after = storage_id()
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM bigdeal WHERE note IS NULL")).scalar_one()
    if count != n:
        report.notes.append(f"add field: expected {n} rows with an empty note, found {count}")
    # the same DDL by hand, for reference
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE bigdeal ADD COLUMN raw_note TEXT"))
    raw_alter_s = time.perf_counter() - start
    what = "pg_class.relfilenode" if is_pg else "sqlite_master.rootpage"
    report.add_field = AddField(report.backend, n, plan_s, apply_s, raw_alter_s, before != after,
                                f"{what} {before} -> {after}; plan: {', '.join(actions)}")
    log(f"add field: plan {plan_s:.3f}s apply {apply_s:.3f}s (raw ALTER {raw_alter_s:.3f}s); {what} {before} -> {after}")


# -- backends ----------------------------------------------------------------------------------


def run_backend(name: str, url: str, sizes: dict[str, int], bulk_reps: int, report: BackendReport) -> None:
    rt = Runtime.open(url)
    try:
        with rt.db.engine.connect() as conn:
            if name == "postgresql":
                report.version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                for setting in ("shared_buffers", "synchronous_commit", "fsync", "work_mem", "max_parallel_workers_per_gather"):
                    report.settings[setting] = conn.execute(sa.text(f"SHOW {setting}")).scalar_one()
            else:
                report.version = sqlite3.sqlite_version
                report.settings["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
                report.settings["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                    conn.exec_driver_sql("PRAGMA synchronous").scalar_one(), "?")
        docs = load_documents([("deal.yaml", dedent(OBJECT_YAML.format(name="deal", extra=""))),
                               ("bigdeal.yaml", dedent(OBJECT_YAML.format(name="bigdeal", extra="")))])
        rt.apply(rt.plan(docs))
        rs = RecordService(rt)
        log(f"{name} {report.version}: objects installed")
        bench_single(rt, rs, report, sizes["single"])
        empty_table(rt.db.engine, rt.tables()["deal"])
        profile_single(rt, rs, report, min(2000, sizes["single"]))
        bench_bulk(rt, rs, report, sizes["bulk"], bulk_reps)
        load_big(rt, report, sizes["list"])
        bench_list(rt, rs, report, sizes["list"])
        bench_add_field(rt, report, sizes["list"])
        bench_automation(rt, url, report, sizes)
    finally:
        rt.db.dispose()


def bench_automation(rt: Runtime, url: str, report: BackendReport, sizes: dict[str, int]) -> None:
    """Rules on the write path (baseline: the same creates into an object without rules), and on
    PostgreSQL outbox delivery throughput with 1 and 3 worker processes."""
    automation.install(rt)
    n = max(500, sizes["single"] // 5)
    best = automation.rule_overhead(rt, n)
    for key, name, label in (("rules_no_match", "five", f"{n:,} creates, 5 rules not matching vs no rules"),
                             ("rule_matches", "one", f"{n:,} creates, 1 matching set-fields rule vs no rules")):
        report.results.append(Result(report.backend, key, label, best[name], best["plain"], "best of 3",
                                     f"{best[name] / n * 1e6:.0f} µs vs {best['plain'] / n * 1e6:.0f} µs per create"))
        log(f"{key}: {best[name]:.2f}s vs {best['plain']:.2f}s ratio {best[name] / best['plain']:.2f}")
    if report.backend == "postgresql":
        jobs = max(200, sizes["single"] // 5)
        rates = {w: automation.outbox_throughput(rt, url, jobs, w) for w in (1, 3)}
        report.extra.append(f"Outbox delivery (webhooks to a loopback HTTP receiver, {jobs:,} jobs, "
                            f"SKIP LOCKED claims): 1 worker process {rates[1]:,.0f} jobs/s, "
                            f"3 worker processes {rates[3]:,.0f} jobs/s.")
        log(f"outbox: 1 worker {rates[1]:.0f}/s, 3 workers {rates[3]:.0f}/s")


# -- output ------------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        import psycopg
        psycopg_version = psycopg.__version__
    except ImportError:  # pragma: no cover
        psycopg_version = "not installed"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(nproc),
        "CPU": cpu,
        "memory": memory,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "SQLAlchemy": sa.__version__,
        "psycopg": psycopg_version,
        "SQLite": sqlite3.sqlite_version,
    }


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(reports: list[BackendReport]) -> None:
    header = f"{'backend':<11} {'benchmark':<44} {'engine':>11} {'raw':>11} {'ratio':>6} {'target':>7}  verdict"
    print("\n" + header)
    print("-" * len(header))
    for report in reports:
        if report.error:
            print(f"{report.backend:<11} FAILED: {report.error}")
        for r in report.results:
            print(f"{r.backend:<11} {r.label:<44} {_fmt_s(r.engine_s):>11} {_fmt_s(r.raw_s):>11} {r.ratio:>6.2f} "
                  f"{'<= ' + str(r.target):>7}  {_verdict(r.met)}")
        a = report.add_field
        if a:
            verdict = "" if report.backend != "postgresql" else _verdict(a.total_s < ADD_FIELD_TARGET_S and not a.rewritten)
            print(f"{a.backend:<11} {'add nullable field, ' + format(a.rows, ',') + ' rows (plan+apply)':<44} "
                  f"{_fmt_s(a.total_s):>11} {_fmt_s(a.raw_alter_s):>11} {'':>6} {'< 1 s':>7}  {verdict}"
                  f"  rewrite: {'yes' if a.rewritten else 'no'}")
    print()


def write_docs(path: Path, reports: list[BackendReport], facts: dict[str, str], command: str, sizes: dict[str, int],
               quick: bool, started: datetime, elapsed: float, skipped: str | None) -> None:
    lines = [
        "# Performance",
        "",
        "Figures measured by `bench/run.py`, which runs every benchmark on SQLite (a temporary file) and on",
        "PostgreSQL (a fresh database, dropped afterwards) and compares the record engine with raw SQLAlchemy",
        "Core (or psycopg COPY for loading) doing the same work, against the same database in the same run.",
        "This file is rewritten by each full run; the numbers below are from the run described here.",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M UTC')} (run took {elapsed / 60:.1f} min)",
        f"- **Command:** `{command}`" + (" (quick smoke sizes, not reference figures)" if quick else ""),
        f"- **Sizes:** {sizes['single']:,} single creates per side, {sizes['bulk']:,} rows per bulk create, "
        f"{sizes['list']:,} rows for the list and add-field benchmarks",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    for report in reports:
        if report.backend == "postgresql" and report.version:
            settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
            lines.append(f"| PostgreSQL | {report.version} on the same machine (127.0.0.1); {settings} |")
        if report.backend == "sqlite":
            settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
            lines.append(f"| SQLite settings | {settings} (as the engine configures a file database) |")
    if skipped:
        lines.append(f"| PostgreSQL | **not measured**: {skipped} |")

    lines += ["", "## Results against the targets", "",
              "Ratio = engine time / raw time (lower is better; 1.00 = no overhead), compared with the target",
              "after rounding to two decimals.", "",
              "| Backend | Benchmark | Engine | Raw | Ratio | Target | Verdict | Detail |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for report in reports:
        for r in report.results:
            lines.append(f"| {r.backend} | {r.label} ({r.unit}) | {_fmt_s(r.engine_s)} | {_fmt_s(r.raw_s)} | "
                         f"{r.ratio:.2f} | <= {r.target} | {_verdict(r.met)} | {r.detail} |")
    lines += ["", "### Adding a nullable field to the large table", "",
              "`runtime.plan` + `runtime.apply` of the object with one more optional text field; the raw column",
              "is a hand-written `ALTER TABLE ... ADD COLUMN` right after, for reference. A rewrite would change",
              "PostgreSQL's `relfilenode` (on SQLite, the table's root page).", "",
              "| Backend | Rows | plan | apply | plan + apply | raw ALTER | Table rewritten | Target (< 1 s, no rewrite) |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for report in reports:
        a = report.add_field
        if a:
            target = (_verdict(a.total_s < ADD_FIELD_TARGET_S and not a.rewritten) if report.backend == "postgresql"
                      else "for information")
            lines.append(f"| {a.backend} | {a.rows:,} | {_fmt_s(a.plan_s)} | {_fmt_s(a.apply_s)} | {_fmt_s(a.total_s)} | "
                         f"{_fmt_s(a.raw_alter_s)} | {'yes' if a.rewritten else 'no'} ({a.evidence}) | {target} |")

    lines += ["", "## How each benchmark is measured", "",
              "All timings use `time.perf_counter()`; engine and raw runs alternate so that neither side gets a",
              "systematically warmer cache. The object has a validation rule, a formula field and `history: true`",
              "(see `OBJECT_YAML` in `bench/run.py`); raw rows carry the same columns the engine writes (id as a",
              "UUIDv7 string, created/updated timestamps, version, every field value including the computed",
              "`weighted`), and the raw side computes the formula in Python inside the timed loop. Field history",
              "is recorded for updates only, so creates write no history rows on either side.", "",
              "1. **Single creates:** `RecordService.create` per record vs `with engine.begin(): conn.execute("
              "table.insert(), row)` per record (one transaction per record on both sides), interleaved in 10 "
              "rounds; total time of all records.",
              "2. **Bulk create:** `RecordService.bulk_create(rows)` vs `conn.execute(table.insert(), list_of_dicts)` "
              "in one transaction (raw time includes building the dicts); the table is emptied before each run; "
              "best of the repetitions.",
              "3. **List pages:** the table is loaded with raw SQL (PostgreSQL: COPY, then VACUUM ANALYZE; SQLite: "
              "executemany in chunks of 10,000, then ANALYZE). The object declares the list view "
              "`filter: [[stage, eq, new]]`, `sort: [-amount]`, so the engine creates the composite index "
              "(stage, amount, id). About 65% of rows have stage `new`. Engine: `RecordService.list` with "
              f"`Query(filter, sort, limit={PAGE})`; raw: the same `SELECT` (WHERE, ORDER BY amount DESC NULLS FIRST, "
              f"id, LIMIT {PAGE + 1} — the engine reads one extra row to know whether a next page exists) built by hand on each call, as a request handler would, "
              "and executed with the same Engine. The deep page starts after the row at the middle of the table "
              "(its cursor is made once with OFFSET, outside the timing, and passed to the engine as "
              "`Query(cursor=...)`; the raw query uses the equivalent keyset predicate). Median of repetitions.",
              "4. **Add field:** see above.", ""]
    extra = [(r.backend, e) for r in reports for e in r.extra]
    if extra:
        lines += ["## Beyond the targets", ""] + [f"- {backend}: {text}" for backend, text in extra] + [""]
    for report in reports:
        if report.profile:
            lines += [f"## Where a single create spends its time ({report.backend}, cProfile)", "",
                      f"{report.profile_n:,} `RecordService.create` calls under cProfile (which inflates Python-heavy",
                      "code, so read the shares rather than the absolute times). Cumulative time per function,",
                      "largest first; a share is of the whole `create` call; (Nx) = calls per create.", "",
                      "```"] + report.profile + ["```", ""]
    notes = [(r.backend, n) for r in reports for n in r.notes]
    if notes:
        lines += ["## Notes from the run", ""]
        for backend, note in notes:
            lines += [f"- {backend}: " + note.replace("\n", "\n  ")]
        lines.append("")
    plans = [(r.backend, k, v) for r in reports for k, v in r.plans.items()]
    if plans:
        lines += ["## Query plans of the list pages", "",
                  "The SQL the engine generated, and the database's plan for it (PostgreSQL: EXPLAIN ANALYZE).", ""]
        for backend, key, value in plans:
            lines += [f"{backend}, {key}:", "", "```"] + value + ["```", ""]
    for report in reports:
        if report.error:
            lines += [f"**{report.backend} failed:** {report.error}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = ""  # sections other benchmarks and sessions own (bench/crm.py, bench/api.py) survive a rewrite
    if path.exists():
        text = path.read_text(encoding="utf-8")
        for name in KEPT_SECTIONS:
            start, end = text.find(f"<!-- {name} -->"), text.find(f"<!-- /{name} -->")
            if start != -1 and end != -1:
                kept += "\n" + text[start:end + len(f"<!-- /{name} -->")] + "\n"
    path.write_text("\n".join(lines).rstrip() + "\n" + kept, encoding="utf-8")


# -- main --------------------------------------------------------------------------------------


class _Skip(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10x fewer rows (smoke run); does not write the docs")
    parser.add_argument("--pg-url", default=os.environ.get("METACRM_BENCH_PG_URL", DEFAULT_PG_ADMIN),
                        help="admin URL of an existing PostgreSQL database (default: %(default)s)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only (for investigating)")
    parser.add_argument("--docs", type=Path, default=None,
                        help=f"where to write the report (default: {DEFAULT_DOCS.relative_to(ROOT)}; "
                             "with --quick, nowhere unless given)")
    parser.add_argument("--no-docs", action="store_true", help="do not write the report")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    bulk_reps = 3 if args.quick else 2
    docs = None if args.no_docs else (args.docs or (None if args.quick else DEFAULT_DOCS))
    command = "python bench/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    facts = machine_facts()
    print(f"metacrm benchmark ({'quick' if args.quick else 'full'}): {sizes}")
    print("  " + ", ".join(f"{k} {v}" for k, v in facts.items()))

    reports: list[BackendReport] = []
    tmp = Path(tempfile.mkdtemp(prefix="metacrm_bench_"))
    try:
        if args.no_sqlite:
            raise _Skip
        print("\nSQLite")
        report = BackendReport("sqlite", sqlite3.sqlite_version)
        reports.append(report)
        try:
            run_backend("sqlite", f"sqlite:///{tmp / 'bench.db'}", sizes, bulk_reps, report)
        except Exception as exc:  # report and carry on with PostgreSQL
            import traceback
            traceback.print_exc()
            report.error = f"{type(exc).__name__}: {exc}"
    except _Skip:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    skipped = "--no-pg given" if args.no_pg else None
    if not args.no_pg:
        print("\nPostgreSQL")
        try:
            admin, name, url = pg_create(args.pg_url)
        except Exception as exc:
            skipped = f"unreachable at {sa.engine.make_url(args.pg_url).render_as_string()} ({type(exc).__name__})"
            print(f"  PostgreSQL is unreachable ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); SQLite only")
        else:
            report = BackendReport("postgresql", "")
            reports.append(report)
            try:
                run_backend("postgresql", url, sizes, bulk_reps, report)
            except Exception as exc:
                import traceback
                traceback.print_exc()
                report.error = f"{type(exc).__name__}: {exc}"
            finally:
                pg_drop(admin, name)
                log(f"dropped database {name}")

    elapsed = time.perf_counter() - t0
    print_table(reports)
    print(f"total {elapsed / 60:.1f} min")
    if docs:
        write_docs(docs, reports, facts, command, sizes, args.quick, started, elapsed, skipped)
        print(f"wrote {docs}")
    return 1 if any(r.error for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
