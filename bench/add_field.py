#!/usr/bin/env python
"""Adding a nullable field to a large PostgreSQL table: runtime.plan + runtime.apply vs a raw ALTER.

    python bench/add_field.py [--rows N] [--samples K] [--pg-url URL] [--profile]

Issue 9's target: under 50 ms on a 1,000,000-row table, metadata-only (no table rewrite). The
table is `bench/run.py`'s `bigdeal` object, filled with raw SQL (one INSERT ... SELECT over
generate_series, then VACUUM ANALYZE). Each sample adds one more optional text field through
the engine (plan and apply timed separately; pg_class.relfilenode must not change), then the
raw side runs `ALTER TABLE bigdeal ADD COLUMN raw_k TEXT` in its own transaction — the same DDL
with nothing around it. Samples alternate which side goes first; min and median are reported.
`--profile` prints where one plan+apply spends its time (cProfile, top 25 cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from textwrap import dedent

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from pgdb import pg_create, pg_drop  # noqa: E402  (bench/pgdb.py)
from run import OBJECT_YAML  # noqa: E402  (bench/run.py)
from metacrm.engine.runtime import Runtime  # noqa: E402
from metacrm.metamodel.loader import load_documents  # noqa: E402

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_S = 0.050


def documents(extra: list[str]):
    fields = "".join(f"  - {{name: {name}, type: text}}\n" for name in extra)
    return load_documents([("bigdeal.yaml", dedent(OBJECT_YAML.format(name="bigdeal", extra=fields)))])


def load(rt: Runtime, rows: int) -> float:
    """`rows` rows written by hand in one statement (system columns, values, the formula)."""
    started = time.perf_counter()
    with rt.db.engine.begin() as conn:
        conn.execute(sa.select(sa.func.set_config("statement_timeout", "0", True)))  # a bulk load, not a request
        conn.execute(sa.text("""
            INSERT INTO bigdeal (id, created_at, updated_at, version, name, stage, amount, probability, weighted)
            SELECT gen_random_uuid(), now() - g * interval '1 second', now(), 1, 'Deal ' || g,
                   (ARRAY['new','won','lost'])[1 + g % 3], g % 1000000, g % 101,
                   round((g % 1000000) * (g % 101) / 100.0, 2)
            FROM generate_series(1, :n) AS g"""), {"n": rows})
    with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE bigdeal"))
    return time.perf_counter() - started


def relfilenode(rt: Runtime) -> int:
    with rt.db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = 'bigdeal'")).scalar_one()


def engine_side(rt: Runtime, extra: list[str]) -> tuple[float, float]:
    docs = documents(extra)  # parsing YAML is the caller's, not part of plan/apply
    started = time.perf_counter()
    plan = rt.plan(docs)
    planned = time.perf_counter()
    if [c.action for c in plan.changes] != ["add_field"]:
        raise RuntimeError(f"unexpected plan: {[c.action for c in plan.changes]}")
    rt.apply(plan)
    return planned - started, time.perf_counter() - planned


def raw_side(rt: Runtime, k: int) -> float:
    started = time.perf_counter()
    with rt.db.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE bigdeal ADD COLUMN raw_{k} TEXT"))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--pg-url", default=os.environ.get("METACRM_BENCH_PG_URL", DEFAULT_PG_ADMIN))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    admin, name, url = pg_create(args.pg_url, "metacrm_bench_add_field")
    try:
        rt = Runtime.open(url)
        try:
            rt.apply(rt.plan(documents([])))
            print(f"loaded {args.rows:,} rows in {load(rt, args.rows):.1f} s", flush=True)
            extra: list[str] = []
            plans, applies, raws = [], [], []
            engine_side(rt, extra + ["warm"])  # warm-up: statement caches, first reflection
            extra.append("warm")
            before = relfilenode(rt)
            for k in range(args.samples):
                extra = extra + [f"note_{k}"]
                if k % 2:
                    raws.append(raw_side(rt, k))
                    plan_s, apply_s = engine_side(rt, extra)
                else:
                    plan_s, apply_s = engine_side(rt, extra)
                    raws.append(raw_side(rt, k))
                plans.append(plan_s)
                applies.append(apply_s)
            after = relfilenode(rt)
            totals = [p + a for p, a in zip(plans, applies)]
            ms = lambda xs: f"{min(xs) * 1e3:.1f} / {statistics.median(xs) * 1e3:.1f} ms"  # noqa: E731
            print(f"| rows | plan | apply | plan + apply | raw ALTER | rewritten | target < {TARGET_S * 1e3:.0f} ms |")
            print("|---:|---:|---:|---:|---:|---|---|")
            verdict = "met" if statistics.median(totals) < TARGET_S else "NOT met"
            print(f"| {args.rows:,} | {ms(plans)} | {ms(applies)} | {ms(totals)} | {ms(raws)} | "
                  f"{'yes' if before != after else 'no'} (relfilenode {before} -> {after}) | {verdict} (median) |")
            statements: list[str] = []
            listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
            sa.event.listen(rt.db.engine, "before_cursor_execute", listener)
            extra = extra + ["counted"]
            engine_side(rt, extra)
            sa.event.remove(rt.db.engine, "before_cursor_execute", listener)
            print(f"statements in one plan + apply: {len(statements)} "
                  f"({sum(1 for s in statements if s.lstrip().upper().startswith(('ALTER', 'CREATE', 'DROP')))} DDL)")
            if args.profile:
                extra = extra + ["profiled"]
                profile = cProfile.Profile()
                profile.enable()
                engine_side(rt, extra)
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats("metacrm", 45)
        finally:
            rt.close()
    finally:
        pg_drop(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
