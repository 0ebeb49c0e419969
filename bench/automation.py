"""Automation benchmarks (called by bench/run.py): the cost of rules on writes, and outbox throughput.

- single creates with 5 active rules whose conditions do not match, vs the same creates with
  no rules (target <= 1.2x); and with one matching set-fields rule (target <= 1.5x);
- outbox delivery throughput (webhooks to a local HTTP receiver) with 1 and 3 worker
  processes on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from textwrap import dedent

import sqlalchemy as sa

from metacrm.engine.automation import outbox as queue
from metacrm.engine.automation.tables import outbox
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.metamodel.loader import load_documents
from metacrm.engine.identity.actor import SYSTEM

ROOT = Path(__file__).resolve().parent.parent

BASE = """
name: {name}
fields:
  - {{name: name, type: text, required: true}}
  - {{name: stage, type: picklist, options: [new, won, lost], default: new}}
  - {{name: amount, type: currency, min: 0}}
  - {{name: probability, type: percent}}
  - {{name: priority, type: picklist, options: [normal, high], default: normal}}
"""
NO_MATCH = "".join(f"""
  - name: never_{i}
    trigger: {{on: created}}
    condition: "amount > {10 ** 12 + i}"
    actions: [{{set: {{priority: "'high'"}}}}, {{notify: {{to: owner, message: "big"}}}}]
""" for i in range(5))
MATCH = """
  - name: always
    trigger: {on: created}
    condition: "amount >= 0"
    actions: [{set: {priority: "'high'"}}]
"""


def install(rt: Runtime) -> None:
    docs = [("plain.yaml", dedent(BASE.format(name="plain"))),
            ("five.yaml", dedent(BASE.format(name="five")) + "automations:" + NO_MATCH),
            ("one.yaml", dedent(BASE.format(name="one")) + "automations:" + MATCH)]
    rt.apply(rt.plan(load_documents(docs)))


def time_creates(rs: RecordService, name: str, rows: list[dict]) -> float:
    start = time.perf_counter()
    for row in rows:
        rs.create(name, row, actor=SYSTEM)
    return time.perf_counter() - start


def rule_overhead(rt: Runtime, n: int, rounds: int = 3) -> dict[str, float]:
    """Best-of-rounds seconds for n single creates into each object, interleaved to share noise."""
    rs = RecordService(rt)
    rows = [{"name": f"d{i}", "amount": f"{i % 9000}.25", "probability": 40} for i in range(n)]
    for name in ("plain", "five", "one"):  # warm up
        time_creates(rs, name, rows[:50])
    best = {"plain": float("inf"), "five": float("inf"), "one": float("inf")}
    for _ in range(rounds):
        for name in best:
            best[name] = min(best[name], time_creates(rs, name, rows))
    return best


class _Receiver:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def outbox_throughput(rt: Runtime, url: str, jobs: int, workers: int) -> float:
    """Jobs per second delivered by `workers` worker processes (start to last delivery)."""
    receiver = _Receiver()
    try:
        with rt.db.begin() as conn:
            conn.execute(sa.delete(outbox))
            now = datetime.now(timezone.utc)
            conn.execute(outbox.insert(), [{"kind": "webhook", "payload": {"url": receiver.url, "timeout": 5,
                                                                            "body": {"n": i}},
                                            "status": "pending", "attempts": 0, "max_attempts": 5,
                                            "next_attempt_at": now, "created_at": now} for i in range(jobs)])
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "metacrm.engine.cli.main", "--database", url, "worker",
                                   "--poll", "0.05", "--batch", "20"], cwd=ROOT, env=dict(os.environ),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with rt.db.engine.connect() as conn:
                    left = conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                        .where(outbox.c.status != "done")).scalar_one()
                if not left:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
        if receiver.count != jobs:
            raise RuntimeError(f"{receiver.count} deliveries for {jobs} jobs")
        return jobs / elapsed
    finally:
        receiver.close()


__all__ = ["install", "rule_overhead", "outbox_throughput", "queue"]
