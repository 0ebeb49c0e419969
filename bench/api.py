#!/usr/bin/env python
"""REST API throughput: `metacrm serve` against a bare Starlette app running the same SQL.

    python bench/api.py [--duration 10] [--threads 2] [--connections 16] [--rows 10000]
                        [--samples 3] [--server-workers 2]
                        [--pg-url URL] [--no-pg] [--no-sqlite] [--tool auto|wrk|python]
                        [--docs PATH | --no-docs]

For each backend (a temporary SQLite file; a fresh PostgreSQL database, dropped at the end) it
installs one object, seeds it with --rows records, and starts two servers on loopback, each
one uvicorn worker process with the same uvicorn settings (`metacrm serve` runs uvicorn at log
level info, access log on; so does the bare app):

- metacrm: `python -m engine.cli.main --database URL serve --port N`;
- bare: a small Starlette file generated in a temporary directory, run by uvicorn, that
  executes the same SELECTs with SQLAlchemy Core and returns them as JSON — no token check,
  no metadata, no permissions.

Both are driven by the same load tool for the same time with the same API token header:
`wrk` (`apt-get install -y wrk`) if it is on PATH, else a small asyncio HTTP/1.1 keep-alive
client in this process (slower; the tool used is printed and written to the report).
Endpoints: GET one record by id, GET a 50-row page (stage = 'new', sorted by amount
descending, then id), and GET a 50-row page in the default order (no view: newest first).
`--samples K` measures each side K times, interleaved (which side goes first alternates), and
reports the median sample with the min; `--server-workers N` runs N uvicorn processes per
server on PostgreSQL. It prints requests/s for each side and the ratio metacrm / bare
(target: >= 0.6), and writes a "## REST API throughput" section into docs/performance.md,
between the markers <!-- api-bench --> and <!-- /api-bench --> only (appended at the end
of the file if the markers are missing; the rest of the file is left as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from textwrap import dedent
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from pgdb import pg_create, pg_drop  # noqa: E402  (bench/pgdb.py)
from metacrm.engine.identity.actor import SYSTEM

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_DOCS = ROOT / "docs" / "performance.md"
BEGIN_MARK, END_MARK = "<!-- api-bench -->", "<!-- /api-bench -->"
TARGET_RATIO = 0.6
OBJECT = "apideal"
PAGE = 50
START_TIMEOUT = 60.0

OBJECT_YAML = f"""
name: {OBJECT}
fields:
  - {{name: name, type: text, required: true}}
  - {{name: stage, type: picklist, options: [new, won, lost], default: new}}
  - {{name: amount, type: currency, min: 0}}
  - {{name: probability, type: percent}}
  - {{name: notes, type: long_text}}
"""

# The bare app: what a developer would write by hand for the same two reads. Sync SQLAlchemy in
# async handlers, as the engine's handlers do; one engine with SQLAlchemy's default pool.
BARE_APP = dedent('''
    import json
    import os
    from datetime import date, datetime
    from decimal import Decimal
    from uuid import UUID

    import sqlalchemy as sa
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    engine = sa.create_engine(os.environ["BARE_DATABASE_URL"])
    # ids are UUIDs; SQLite keeps them as 32 hex digits, which reflection cannot tell from text
    table = sa.Table(os.environ["BARE_TABLE"], sa.MetaData(),
                     *(sa.Column(name, sa.Uuid(as_uuid=False), primary_key=name == "id")
                       for name in ("id", "created_by", "updated_by", "owner")),
                     autoload_with=engine)
    PAGE = int(os.environ["BARE_PAGE"])


    def jsonable(row):
        out = {}
        for key, value in row.items():
            if isinstance(value, Decimal):
                value = float(value)
            elif isinstance(value, (datetime, date)):
                value = value.isoformat()
            elif isinstance(value, UUID):
                value = str(value)
            out[key] = value
        return out


    async def one(request):
        with engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == request.path_params["id"])).mappings().first()
        if row is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(jsonable(row), headers={"ETag": f'"{row["id"]}.{row["version"]}"'})


    async def page(request):
        query = (sa.select(table).where(table.c.stage == request.query_params["stage"])
                 .order_by(table.c.amount.desc().nulls_first(), table.c.id.asc()).limit(PAGE + 1))
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        records = [jsonable(r) for r in rows[:PAGE]]
        return JSONResponse({"records": records, "next_cursor": records[-1]["id"] if len(rows) > PAGE else None})


    async def newest(request):
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id.asc()).limit(PAGE + 1)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        records = [jsonable(r) for r in rows[:PAGE]]
        return JSONResponse({"records": records, "next_cursor": records[-1]["id"] if len(rows) > PAGE else None})


    app = Starlette(routes=[Route("/records/newest", newest), Route("/records/{id}", one), Route("/records", page)])
''')


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def start_server(name: str, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> Server:
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    with open(log_path, "wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    return Server(name, process, f"http://127.0.0.1:{port}", log_path)


def http_get(url: str, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n"
                               f"{server.log_path.read_text(errors='replace')[-3000:]}")
        try:
            status, body = http_get(server.base + path, headers, timeout=2.0)
            if status == 200:
                return
            last = f"{status} {body[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {path} with 200 within {START_TIMEOUT:.0f} s (last: {last})")


# -- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    bad: int  # non-2xx answers, socket errors and timeouts


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, headers: dict[str, str], seconds: float, threads: int, connections: int) -> Load:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    requests, elapsed = int(done.group(1)), _ms(done.group(2) + done.group(3)) / 1000
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M))
    bad = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        bad += sum(int(g) for g in m.groups())
    return Load(requests, elapsed, rps, _ms(percentiles["50"]) if "50" in percentiles else None,
                _ms(percentiles["99"]) if "99" in percentiles else None, bad)


def run_python_load(url: str, headers: dict[str, str], seconds: float, connections: int) -> Load:
    """An asyncio HTTP/1.1 keep-alive client: `connections` connections, one request in flight each."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n".encode()
    latencies: list[float] = []
    bad = [0]

    async def one_connection(deadline: float) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 400:
                    bad[0] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            bad[0] += 1
        finally:
            writer.close()

    async def drive() -> float:
        started = time.monotonic()
        await asyncio.gather(*(one_connection(started + seconds) for _ in range(connections)))
        return time.monotonic() - started

    elapsed = asyncio.run(drive())
    ordered = sorted(latencies)
    pick = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000) if ordered else (lambda q: None)
    return Load(len(latencies), elapsed, len(latencies) / elapsed, pick(0.50), pick(0.99), bad[0])


def drive(tool: str, url: str, headers: dict[str, str], seconds: float, threads: int, connections: int) -> Load:
    if tool == "wrk":
        return run_wrk(url, headers, seconds, threads, connections)
    return run_python_load(url, headers, seconds, connections)


# -- one backend -------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    endpoint: str
    metacrm: Load  # the sample with the median req/s (of --samples interleaved samples)
    bare: Load
    metacrm_rps: list[float] = field(default_factory=list)  # every sample
    bare_rps: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.metacrm.rps / self.bare.rps if self.bare.rps else float("nan")

    @property
    def met(self) -> bool:
        return round(self.ratio, 2) >= TARGET_RATIO


@dataclass
class BackendResult:
    backend: str
    rows: list[Row] = field(default_factory=list)
    detail: str = ""
    error: str | None = None


def seed(url: str, rows: int) -> tuple[str, str]:
    """Install the object, create `rows` records and an admin with an API token; (token, one id)."""
    from metacrm.engine.records.service import RecordService
    from metacrm.engine.runtime import Runtime
    from metacrm.engine import identity
    from metacrm.engine.security import auth
    from metacrm.metamodel.loader import load_documents

    runtime = Runtime.open(url)
    try:
        runtime.apply(runtime.plan(load_documents([(f"{OBJECT}.yaml", dedent(OBJECT_YAML))])))
        rng = random.Random(20261123)
        data = [{"name": f"Deal {i:06d}", "stage": rng.choice(("new", "won", "lost")),
                 "amount": Decimal(rng.randrange(0, 100_000_000)) / 100, "probability": rng.randrange(0, 101),
                 "notes": "seeded by bench/api.py"} for i in range(rows)]
        service = RecordService(runtime)
        ids: list[str] = []
        for start in range(0, rows, 5000):
            result = service.bulk_create(OBJECT, data[start:start + 5000], all_or_none=True, actor=SYSTEM)
            ids += result.ids
        with runtime.db.begin() as conn:
            admin = identity.create_user(conn, "Bench Admin", f"bench-{uuid.uuid4().hex[:8]}@example.com",
                                         roles=["admin"])
            token = auth.create_token(conn, admin.id, "bench", auth.utcnow())
        if runtime.db.is_postgresql:
            with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f"VACUUM ANALYZE {OBJECT}"))
        return token, ids[len(ids) // 2]
    finally:
        runtime.close()


def bench_backend(name: str, url: str, args, tool: str, workdir: Path) -> BackendResult:
    result = BackendResult(name)
    workers = 1 if name == "sqlite" else args.server_workers  # one process per SQLite file
    log(f"{name}: seeding {args.rows:,} records; {workers} server process(es) per side")
    token, one_id = seed(url, args.rows)
    headers = {"Authorization": f"Bearer {token}"}
    env = {k: v for k, v in os.environ.items() if k not in ("METACRM_DATABASE_URL", "METACRM_INPROCESS_WORKER")}
    bare_env = dict(env, BARE_DATABASE_URL=url, BARE_TABLE=OBJECT, BARE_PAGE=str(PAGE),
                    PYTHONPATH=str(workdir))
    servers = []
    try:
        metacrm = start_server(f"metacrm ({name})",
                               [sys.executable, "-m", "metacrm.engine.cli.main", "--database", url, "serve",
                                "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers)],
                               ROOT, env, workdir / f"metacrm-{name}.log")
        servers.append(metacrm)
        bare = start_server(f"bare ({name})",
                            [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", "{port}",
                             "--workers", str(workers), "--log-level", "info"], workdir, bare_env,
                            workdir / f"bare-{name}.log")
        servers.append(bare)
        endpoints = {
            "GET one record by id": (f"/api/v1/records/{OBJECT}/{one_id}", f"/records/{one_id}"),
            f"GET a {PAGE}-row page (filter + sort)": (f"/api/v1/records/{OBJECT}?stage=new&sort=-amount&limit={PAGE}",
                                                       "/records?stage=new"),
            f"GET a {PAGE}-row page, default order (newest first)": (f"/api/v1/records/{OBJECT}?limit={PAGE}",
                                                                     "/records/newest"),
        }
        wait_ready(metacrm, next(iter(endpoints.values()))[0], headers)
        wait_ready(bare, next(iter(endpoints.values()))[1], headers)
        for endpoint, (mpath, bpath) in endpoints.items():
            same_answer(metacrm.base + mpath, bare.base + bpath, headers)
            loads = interleaved_loads(tool, {"metacrm": metacrm.base + mpath, "bare": bare.base + bpath}, headers,
                                      args, name, endpoint)
            row = Row(name, endpoint, median_load(loads["metacrm"]), median_load(loads["bare"]),
                      [x.rps for x in loads["metacrm"]], [x.rps for x in loads["bare"]])
            result.rows.append(row)
            log(f"{name}: {endpoint}: ratio {row.ratio:.2f} (target >= {TARGET_RATIO})")
    finally:
        for server in servers:
            server.stop()
    return result


def interleaved_loads(tool: str, urls: dict[str, str], headers: dict[str, str], args, name: str,
                      endpoint: str) -> dict[str, list[Load]]:
    """`args.samples` measurements per side, alternating which side goes first, so a machine
    that gets busier or quieter during the run affects both sides alike."""
    loads: dict[str, list[Load]] = {side: [] for side in urls}
    for sample in range(args.samples):
        sides = list(urls) if sample % 2 == 0 else list(reversed(urls))
        for side in sides:
            drive(tool, urls[side], headers, args.warmup, args.threads, args.connections)
            load = drive(tool, urls[side], headers, args.duration, args.threads, args.connections)
            if load.bad:
                raise RuntimeError(f"{side} {endpoint}: {load.bad} failed requests under load")
            loads[side].append(load)
            log(f"{name}: {endpoint}: {side} sample {sample + 1}: {load.rps:,.0f} req/s "
                f"(p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms)")
    return loads


def median_load(loads: list[Load]) -> Load:
    return sorted(loads, key=lambda load: load.rps)[(len(loads) - 1) // 2]


def same_answer(metacrm_url: str, bare_url: str, headers: dict[str, str]) -> None:
    """Both servers must return the same records (by id) before they are compared."""
    import json

    status_m, body_m = http_get(metacrm_url, headers)
    status_b, body_b = http_get(bare_url, headers)
    if status_m != 200 or status_b != 200:
        raise RuntimeError(f"not 200: metacrm {status_m} {body_m[:200]!r}, bare {status_b} {body_b[:200]!r}")
    ids = lambda body: [r["id"] for r in body["records"]] if "records" in body else [body["id"]]  # noqa: E731
    if ids(json.loads(body_m)) != ids(json.loads(body_b)):
        raise RuntimeError(f"metacrm and bare returned different records for {metacrm_url}")


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg_version(admin_url: str) -> str:
    try:
        engine = sa.create_engine(admin_url)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
        return str(version)
    except sa.exc.SQLAlchemyError:
        return "?"


# -- report ------------------------------------------------------------------------------------


def tool_version(tool: str) -> str:
    if tool != "wrk":
        return "asyncio keep-alive client in bench/api.py (wrk not found)"
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout + \
        subprocess.run(["wrk", "--version"], capture_output=True, text=True).stderr
    return (out.strip().splitlines() or ["wrk"])[0].split(" Copyright")[0]


def facts(tool: str, pg: str | None) -> dict[str, str]:
    import starlette
    import uvicorn

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found = {"nproc": str(nproc), "CPU": cpu, "Python": platform.python_version(),
             "uvicorn": uvicorn.__version__, "Starlette": starlette.__version__, "SQLAlchemy": sa.__version__,
             "load tool": tool_version(tool)}
    if pg:
        found["PostgreSQL"] = f"{pg} on the same machine (127.0.0.1)"
    return found


def print_table(results: list[BackendResult]) -> None:
    print()
    print(f"{'backend':<11} {'endpoint':<34} {'metacrm req/s':>14} {'bare req/s':>11} {'ratio':>6}  verdict")
    for result in results:
        for row in result.rows:
            print(f"{row.backend:<11} {row.endpoint:<34} {row.metacrm.rps:>14,.0f} {row.bare.rps:>11,.0f} "
                  f"{row.ratio:>6.2f}  {'met' if row.met else 'NOT met'} (>= {TARGET_RATIO})")
            if len(row.metacrm_rps) > 1:
                print(f"{'':<11} {'  best / median req/s':<34} {max(row.metacrm_rps):>7,.0f} / {row.metacrm.rps:<6,.0f}"
                      f" {max(row.bare_rps):>5,.0f} / {row.bare.rps:<6,.0f}")
        if result.error:
            print(f"{result.backend}: FAILED: {result.error}")
    print()


def section(results: list[BackendResult], found: dict[str, str], args, command: str, started: datetime,
            elapsed: float) -> str:
    latency = lambda load: f"{load.p50_ms:.2f} / {load.p99_ms:.2f} ms" if load.p50_ms is not None else "?"  # noqa
    lines = [
        BEGIN_MARK,
        "## REST API throughput",
        "",
        "Written by `bench/api.py` (only this section; `bench/run.py` measures the record engine). Each",
        "backend gets one object with "
        f"{args.rows:,} seeded records and two servers on loopback, each one uvicorn worker",
        "process with the same settings (log level info, access log on): `metacrm serve`, and a bare",
        "Starlette app that runs the same SELECT with SQLAlchemy Core and returns the rows as JSON.",
        f"Both are loaded with {args.threads} threads and {args.connections} keep-alive connections for "
        f"{args.duration:g} s after a {args.warmup:g} s warm-up,",
        "sending the same `Authorization: Bearer` header. Ratio = metacrm requests/s ÷ bare requests/s",
        f"(higher is better; target >= {TARGET_RATIO}).",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M UTC')} (run took {elapsed / 60:.1f} min)",
        f"- **Command:** `{command}`",
        "- **Machine:** " + "; ".join(f"{k}: {v}" for k, v in found.items()),
        "",
        "| Backend | Endpoint | metacrm req/s | bare req/s | Ratio | Target | Verdict | metacrm p50 / p99 | bare p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        for row in result.rows:
            lines.append(f"| {row.backend} | {row.endpoint} | {row.metacrm.rps:,.0f} | {row.bare.rps:,.0f} | "
                         f"{row.ratio:.2f} | >= {TARGET_RATIO} | {'met' if row.met else 'NOT met'} | "
                         f"{latency(row.metacrm)} | {latency(row.bare)} |")
    lines += [
        "",
        "What one request costs on each side:",
        "",
        "- **metacrm:** the check for a newer metadata revision, the API token lookup (token, user, roles),",
        "  the permission check, the SELECT, conversion of each value to JSON by its field type, and for the",
        "  page a keyset cursor, on connections from a pool with pre-ping (PostgreSQL); on SQLite the",
        "  in-process automation worker thread also runs (`metacrm serve` starts it there).",
        "- **bare:** the SELECT (the same columns, WHERE and ORDER BY; the id as a bound parameter) and",
        "  `JSONResponse` of the rows; no authentication.",
    ]
    for result in results:
        if result.error:
            lines += ["", f"**{result.backend} failed:** {result.error}"]
    lines.append(END_MARK)
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace what is between the markers (inclusive), or append the section; nothing else changes."""
    current = path.read_text("utf-8") if path.exists() else ""
    start, end = current.find(BEGIN_MARK), current.find(END_MARK)
    if start != -1 and end != -1 and end > start:
        updated = current[:start] + text + current[end + len(END_MARK):]
    else:
        separator = "" if not current else ("\n" if current.endswith("\n") else "\n\n")  # one blank line
        updated = current + separator + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated, encoding="utf-8")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--rows", type=int, default=10_000, help="seeded records (default 10,000)")
    parser.add_argument("--samples", type=int, default=1,
                        help="interleaved measurements per side and endpoint; the median is reported (default 1)")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="uvicorn worker processes per server on PostgreSQL (SQLite: always 1; default 1)")
    parser.add_argument("--pg-url", default=os.environ.get("METACRM_BENCH_PG_URL", DEFAULT_PG_ADMIN),
                        help="PostgreSQL admin URL; a database is created there and dropped at the end")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="report file (default docs/performance.md)")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args(argv)

    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    if tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (apt-get install -y wrk), or use --tool python")
    log(f"load tool: {tool_version(tool)}")

    started, clock = datetime.now(timezone.utc), time.monotonic()
    results: list[BackendResult] = []
    pg = None
    with tempfile.TemporaryDirectory(prefix="metacrm-apibench-") as tmp:
        workdir = Path(tmp)
        (workdir / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
        if not args.no_sqlite:
            try:
                results.append(bench_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", args, tool, workdir))
            except Exception as exc:  # noqa: BLE001 - report and go on with the other backend
                results.append(BackendResult("sqlite", error=f"{type(exc).__name__}: {exc}"))
        if not args.no_pg:
            try:
                admin, name, url = pg_create(args.pg_url, "metacrm_apibench")
            except sa.exc.OperationalError as exc:
                log(f"PostgreSQL is unreachable, measuring SQLite only: {exc.orig}")
            else:
                pg = pg_version(args.pg_url)
                try:
                    results.append(bench_backend("postgresql", url, args, tool, workdir))
                except Exception as exc:  # noqa: BLE001
                    results.append(BackendResult("postgresql", error=f"{type(exc).__name__}: {exc}"))
                finally:
                    pg_drop(admin, name)
    elapsed = time.monotonic() - clock
    print_table(results)
    if not args.no_docs:
        command = "python bench/api.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        write_section(args.docs, section(results, facts(tool, pg), args, command.strip(), started, elapsed))
        log(f"wrote the REST API section of {args.docs}")
    failed = any(r.error for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
