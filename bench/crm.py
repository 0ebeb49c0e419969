#!/usr/bin/env python
"""CRM-shaped benchmarks: crm_standard's opportunity, written and listed as a sales rep.

    python bench/crm.py [--quick] [--no-pg] [--pg-url URL] [--samples K] [--ops N] [--list-rows N]

bench/run.py measures a flat object as the system user. Real work is dearer, so this measures
crm_standard (account + opportunity, installed from the template) with field history on for
opportunities and the role `sales_rep` limited to its own opportunities (read: own, edit: own):

1. create an opportunity as the rep (lookup check, defaults, formula, validation rule, the
   account's two rollups recomputed, parent version bump) vs the same statements by hand;
2. update amount + next step as the rep with the version read (own-scope check, optimistic
   version check, formula, history rows, the account's won-revenue rollup) vs by hand;
3. the rep's own-scope list in the default order (newest first) over --list-rows rows;
4. the default-order list (no view, no filter) as the system user over the same rows.

Every raw side executes the SQL a careful hand-written handler would for the same result, in
the same transaction shape. Samples alternate engine/raw (and which goes first) and are
reported as min and median per operation, so a noisy machine shows up as a wide spread
rather than a wrong ratio. Sizes are flags; --quick finishes in a few minutes.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from pgdb import pg_create, pg_drop  # noqa: E402  (bench/pgdb.py)
from metacrm.engine.identity.actor import SYSTEM, Actor  # noqa: E402
from metacrm.engine.storage.ids import new_id  # noqa: E402
from metacrm.engine.records.query import Query  # noqa: E402
from metacrm.engine.records.service import RecordService  # noqa: E402
from metacrm.engine.runtime import Runtime, find_template  # noqa: E402
from metacrm.engine import identity  # noqa: E402
from metacrm.metamodel.loader import Document  # noqa: E402

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FULL = {"samples": 9, "ops": 200, "list_rows": 1_000_000, "accounts": 200, "users": 10}
QUICK = {"samples": 5, "ops": 40, "list_rows": 50_000, "accounts": 50, "users": 10}
PAGE = 50
CENT = Decimal("0.01")
OPEN = ("closed_won", "closed_lost")


# -- setup -------------------------------------------------------------------------------------


def crm_documents() -> list[Document]:
    """crm_standard, with history on opportunities and a sales rep limited to their own deals."""
    docs = []
    for doc in find_template("crm_standard").objects:
        data = dict(doc.data)
        if data["name"] == "opportunity":
            data["history"] = True
            data["permissions"] = {"sales_rep": {"create": True, "read": "own", "edit": "own"}}
        elif data["name"] == "account":
            data["permissions"] = {"sales_rep": {"read": "all", "edit": "none"}}
        docs.append(Document(data, source=doc.source))
    return docs


@dataclass
class Setup:
    rt: Runtime
    rs: RecordService
    rep: Actor
    users: list[str]
    accounts: list[str]


def prepare(url: str, sizes: dict[str, int]) -> Setup:
    rt = Runtime.open(url)
    rt.apply(rt.plan(crm_documents()))
    with rt.db.begin() as conn:
        users = [identity.create_user(conn, f"Rep {i}", f"rep{i}@example.com", roles=["sales_rep"]).id
                 for i in range(sizes["users"])]
    rs = RecordService(rt)
    result = rs.bulk_create("account", [{"name": f"Account {i}"} for i in range(sizes["accounts"])], actor=SYSTEM)
    return Setup(rt, rs, Actor(user_id=users[0], roles=frozenset({"sales_rep"})), users, list(result.ids))


# -- timing ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Row:
    backend: str
    label: str
    engine: list[float]  # seconds per operation, one per sample
    raw: list[float]

    def cells(self) -> list[str]:
        e_min, e_med = min(self.engine), statistics.median(self.engine)
        r_min, r_med = min(self.raw), statistics.median(self.raw)
        return [self.backend, self.label, f"{e_min * 1e3:.2f} / {e_med * 1e3:.2f} ms",
                f"{r_min * 1e3:.2f} / {r_med * 1e3:.2f} ms", f"{e_min / r_min:.2f}", f"{e_med / r_med:.2f}",
                str(len(self.engine))]


def interleaved(engine_fn: Callable[[int], Any], raw_fn: Callable[[int], Any], samples: int, ops: int
                ) -> tuple[list[float], list[float]]:
    """`samples` rounds of `ops` operations per side, alternating which side goes first;
    per-operation seconds of each round. `fn(i)` runs operation i of the round."""
    engine_fn(-1), raw_fn(-1)  # warm-up: statement caches, pools
    engine_times, raw_times = [], []
    for s in range(samples):
        sides = [(engine_fn, engine_times), (raw_fn, raw_times)]
        if s % 2:
            sides.reverse()
        for fn, bucket in sides:
            bucket.append(timed(lambda: [fn(s * ops + i) for i in range(ops)]) / ops)
    return engine_times, raw_times


# -- the raw side ------------------------------------------------------------------------------


def weighted(amount: Decimal | None, probability: Decimal | None) -> Decimal | None:
    if amount is None or probability is None:
        return None
    return (amount * probability / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def rollup_values(opp: sa.Table, account: sa.Table) -> dict[str, sa.ColumnElement]:
    """The account's two rollups as correlated subqueries (count of open, sum of won)."""
    open_count = (sa.select(sa.func.count()).where(opp.c.account == account.c.id)
                  .where(sa.or_(opp.c.stage.not_in(OPEN), opp.c.stage.is_(None))).scalar_subquery())
    won = (sa.select(sa.func.sum(opp.c.amount)).where(opp.c.account == account.c.id)
           .where(opp.c.stage == "closed_won").scalar_subquery())
    return {"open_opportunity_count": sa.func.coalesce(open_count, 0), "won_revenue": sa.func.coalesce(won, 0)}


class Raw:
    """The same writes and reads by hand, with SQLAlchemy Core on the same Engine."""

    def __init__(self, setup: Setup):
        self.engine = setup.rt.db.engine
        self.opp, self.account = setup.rt.tables()["opportunity"], setup.rt.tables()["account"]
        self.rep = setup.rep.user_id

    def create(self, values: dict[str, Any]) -> str:
        opp, account = self.opp, self.account
        now = datetime.now(timezone.utc)
        amount, probability = Decimal(values["amount"]), Decimal(values["probability"]).quantize(CENT)
        stage = values.get("stage", "prospecting")
        if stage == "closed_lost" and not values.get("loss_reason"):
            raise ValueError("loss reason required")
        row = {c.name: None for c in opp.columns}
        row.update(id=new_id(), created_at=now, updated_at=now, created_by=self.rep, updated_by=self.rep,
                   owner=self.rep, version=1, name=values["name"], account=values["account"],
                   deal_type="new_business", stage=stage, amount=amount, probability=probability,
                   weighted_amount=weighted(amount, probability))
        with self.engine.begin() as conn:
            if conn.execute(sa.select(account.c.id).where(account.c.id == values["account"])).first() is None:
                raise ValueError("no such account")
            conn.execute(opp.insert(), row)
            conn.execute(account.update().where(account.c.id == values["account"])
                         .values(**rollup_values(opp, account), updated_at=now, version=account.c.version + 1))
        return row["id"]

    def update(self, record_id: str, values: dict[str, Any]) -> None:
        opp, account = self.opp, self.account
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(opp).where(opp.c.id == record_id, opp.c.owner == self.rep)).mappings().first()
            if before is None:
                raise LookupError("not found or not yours")
            after = dict(before, amount=Decimal(values["amount"]), next_step=values["next_step"])
            after["weighted_amount"] = weighted(after["amount"], after["probability"])
            changed = [f for f in ("amount", "weighted_amount", "next_step") if after[f] != before[f]]
            done = conn.execute(opp.update().where(opp.c.id == record_id, opp.c.version == before["version"])
                                .values(updated_at=now, updated_by=self.rep, version=before["version"] + 1,
                                        **{f: after[f] for f in changed}))
            if done.rowcount != 1:
                raise RuntimeError("changed by someone else")
            history = sa.table("metacrm_field_history", *(sa.column(c) for c in (
                "object", "record_id", "field_id", "field", "old_value", "new_value", "changed_by", "changed_at")))
            conn.execute(history.insert(), [
                {"object": "opportunity", "record_id": record_id, "field_id": f, "field": f,
                 "old_value": _json(before[f]), "new_value": _json(after[f]), "changed_by": self.rep,
                 "changed_at": now} for f in changed])
            conn.execute(account.update().where(account.c.id == before["account"])
                         .values(won_revenue=rollup_values(opp, account)["won_revenue"]))

    def page(self, owner: str | None) -> list:
        opp = self.opp
        statement = sa.select(opp).order_by(opp.c.created_at.desc(), opp.c.id).limit(PAGE + 1)
        if owner is not None:
            statement = statement.where(opp.c.owner == owner)
        with self.engine.connect() as conn:
            return conn.execute(statement).all()


def _json(value: Any) -> str | None:
    import json

    return None if value is None else json.dumps(str(value) if isinstance(value, Decimal) else value)


# -- benchmarks --------------------------------------------------------------------------------


def deal(i: int, accounts: list[str], rng: random.Random) -> dict[str, Any]:
    return {"name": f"Deal {i}", "account": accounts[i % len(accounts)],
            "amount": str(Decimal(rng.randrange(0, 10_000_000)).scaleb(-2)), "probability": rng.randrange(0, 101)}


def bench_writes(setup: Setup, backend: str, samples: int, ops: int) -> list[Row]:
    raw, rng = Raw(setup), random.Random(7)
    engine_ids, raw_ids = [], []

    def engine_create(i):
        engine_ids.append(setup.rs.create("opportunity", deal(i, setup.accounts, rng), actor=setup.rep)["id"])

    def raw_create(i):
        raw_ids.append(raw.create(deal(i, setup.accounts, rng)))

    created = Row(backend, "create an opportunity as a sales rep (1 txn)", *interleaved(engine_create, raw_create, samples, ops))
    versions = {}

    def engine_update(i):
        record_id = engine_ids[i % len(engine_ids)]
        values = {"amount": str(Decimal(rng.randrange(0, 10_000_000)).scaleb(-2)), "next_step": f"call {i}"}
        versions[record_id] = setup.rs.update("opportunity", record_id, values, actor=setup.rep,
                                              version=versions.get(record_id, 1))["version"]

    def raw_update(i):
        raw.update(raw_ids[i % len(raw_ids)], {"amount": str(Decimal(rng.randrange(0, 10_000_000)).scaleb(-2)),
                                               "next_step": f"call {i}"})

    updated = Row(backend, "update amount + next step as the rep (1 txn, history on)",
                  *interleaved(engine_update, raw_update, samples, ops))
    return [created, updated]


def load_opportunities(setup: Setup, n: int) -> None:
    """n opportunities by raw executemany, spread over the users and the last n seconds."""
    opp, rng = setup.rt.tables()["opportunity"], random.Random(11)
    start = datetime.now(timezone.utc) - timedelta(seconds=n)
    chunk = 10_000
    for offset in range(0, n, chunk):
        rows = []
        for i in range(offset, min(n, offset + chunk)):
            at = start + timedelta(seconds=i)
            owner = setup.users[i % len(setup.users)]
            amount, probability = Decimal(rng.randrange(0, 10_000_000)).scaleb(-2), Decimal(rng.randrange(0, 101))
            row = {c.name: None for c in opp.columns}
            row.update(id=new_id(), created_at=at, updated_at=at, created_by=owner, updated_by=owner, owner=owner,
                       version=1, name=f"Loaded {i}", account=setup.accounts[i % len(setup.accounts)],
                       deal_type="new_business", stage="prospecting", amount=amount, probability=probability,
                       weighted_amount=weighted(amount, probability))
            rows.append(row)
        with setup.rt.db.begin() as conn:
            conn.execute(opp.insert(), rows)
    with setup.rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


def bench_lists(setup: Setup, backend: str, samples: int, ops: int, rows: int) -> list[Row]:
    raw = Raw(setup)
    system = Actor(system=True)
    first = setup.rs.list("opportunity", Query(limit=PAGE), actor=setup.rep)
    if [r["id"] for r in first.records] != [str(r.id) for r in raw.page(setup.rep.user_id)[:PAGE]]:
        raise RuntimeError("the rep's engine and raw pages differ")
    own = Row(backend, f"rep's own-scope list, default order, first page of {rows:,}",
              *interleaved(lambda i: setup.rs.list("opportunity", Query(limit=PAGE), actor=setup.rep),
                           lambda i: raw.page(setup.rep.user_id), samples, ops))
    default = Row(backend, f"default-order list (no view), first page of {rows:,}",
                  *interleaved(lambda i: setup.rs.list("opportunity", Query(limit=PAGE), actor=system),
                               lambda i: raw.page(None), samples, ops))
    return [own, default]


def run_backend(backend: str, url: str, sizes: dict[str, int]) -> list[Row]:
    setup = prepare(url, sizes)
    try:
        print(f"[{backend}] writes: {sizes['samples']} samples x {sizes['ops']} ops per side", flush=True)
        rows = bench_writes(setup, backend, sizes["samples"], sizes["ops"])
        print(f"[{backend}] loading {sizes['list_rows']:,} opportunities", flush=True)
        load_opportunities(setup, sizes["list_rows"])
        rows += bench_lists(setup, backend, sizes["samples"], sizes["ops"], sizes["list_rows"])
        return rows
    finally:
        setup.rt.close()


def render(rows: list[Row]) -> str:
    header = ["Backend", "Benchmark", "engine min / median", "raw min / median", "ratio (min)", "ratio (median)", "samples"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--samples", type=int, help="interleaved samples per side")
    parser.add_argument("--ops", type=int, help="operations per sample")
    parser.add_argument("--list-rows", type=int, help="opportunities loaded for the list benchmarks")
    parser.add_argument("--accounts", type=int, help="accounts the opportunities are spread over")
    parser.add_argument("--pg-url", default=os.environ.get("METACRM_BENCH_PG_URL", DEFAULT_PG_ADMIN))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("samples", "ops", "list_rows", "accounts"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    rows: list[Row] = []
    started = time.perf_counter()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_backend("sqlite", f"sqlite:///{Path(tmp) / 'crm.db'}", sizes)
    if not args.no_pg:
        try:
            admin, name, url = pg_create(args.pg_url, "metacrm_bench_crm")
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL unreachable, skipped: {exc}", file=sys.stderr)
        else:
            try:
                rows += run_backend("postgresql", url, sizes)
            finally:
                pg_drop(admin, name)
    print(render(rows))
    print(f"sizes: {sizes}; took {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
