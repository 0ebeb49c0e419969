#!/usr/bin/env python
"""The write-path ratios of issue 9, in wall-clock and in process CPU time, for a shared machine.

    python bench/write_path.py [--pg URL] [--ops N] [--rounds K]

Measures the same things as bench/run.py's "single creates" (bench object: validation rule,
formula, history on; engine vs raw Core insert, one transaction each) and bench/automation.py's
"5 rules not matching" / "1 matching rule" (vs the same creates into an object without rules),
interleaved in K rounds of N operations, reporting the best round of each side.

Why CPU time too: on a machine shared with other busy processes, wall-clock time of both sides
includes waiting for a core, which compresses or inflates ratios at random. On SQLite all the
work happens in this process, so the ratio of process CPU times is the engine's real overhead;
on PostgreSQL the server's CPU is not counted (the CPU ratio there shows the client's share only).
Run it against another checkout with PYTHONPATH to compare before/after on the same machine state.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from textwrap import dedent

sys.path.insert(0, str(Path(__file__).resolve().parent))

import automation  # noqa: E402  (bench/automation.py)
import run  # noqa: E402  (bench/run.py)
from pgdb import pg_create, pg_drop  # noqa: E402
from metacrm.engine.identity.actor import SYSTEM  # noqa: E402
from metacrm.engine.records.service import RecordService  # noqa: E402
from metacrm.engine.runtime import Runtime  # noqa: E402
from metacrm.metamodel.loader import load_documents  # noqa: E402


def measure(url: str, ops: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Best (wall, cpu) seconds per side over the rounds."""
    rt = Runtime.open(url)
    try:
        rt.apply(rt.plan(load_documents([("deal.yaml", dedent(run.OBJECT_YAML.format(name="deal", extra="")))])))
        automation.install(rt)
        rs = RecordService(rt)
        table, engine = rt.tables()["deal"], rt.db.engine
        rows = run.Data(1).rows(ops * (rounds + 1))
        plain = [{"name": f"d{i}", "amount": f"{i % 9000}.25", "probability": 40} for i in range(ops)]

        def engine_part(part):
            for api, _ in part:
                rs.create("deal", api, actor=SYSTEM)

        def raw_part(part):
            for _, typed in part:
                with engine.begin() as conn:
                    conn.execute(table.insert(), run.raw_record(typed, datetime.now(timezone.utc)))

        sides = {"engine": None, "raw": None, "plain": lambda: automation.time_creates(rs, "plain", plain),
                 "five": lambda: automation.time_creates(rs, "five", plain),
                 "one": lambda: automation.time_creates(rs, "one", plain)}
        engine_part(rows[:50]), raw_part(rows[50:100])  # warm-up
        for name in ("plain", "five", "one"):
            automation.time_creates(rs, name, plain[:50])
        best = {k: (float("inf"), float("inf")) for k in sides}
        for r in range(rounds):
            part = rows[(r + 1) * ops:(r + 2) * ops]
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                fn = sides[name] or (lambda: (engine_part if name == "engine" else raw_part)(part))
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        return best
    finally:
        rt.close()


def report(backend: str, best: dict[str, tuple[float, float]], ops: int) -> None:
    for i, what in ((0, "wall"), (1, "cpu ")):
        per = lambda k: best[k][i] / ops * 1e6  # noqa: E731
        print(f"{backend:10} {what}  single creates {best['engine'][i] / best['raw'][i]:.2f} "
              f"({per('engine'):.0f} vs {per('raw'):.0f} µs)   5 rules not matching {best['five'][i] / best['plain'][i]:.2f}   "
              f"1 matching rule {best['one'][i] / best['plain'][i]:.2f} (plain {per('plain'):.0f} µs)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", help="PostgreSQL admin URL (a database is created and dropped)")
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", measure(f"sqlite:///{Path(tmp) / 'w.db'}", args.ops, args.rounds), args.ops)
    if args.pg:
        admin, name, url = pg_create(args.pg, "metacrm_bench_write")
        try:
            report("postgresql", measure(url, args.ops, args.rounds), args.ops)
        finally:
            pg_drop(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
