"""Browser-test fixtures: a live `metacrm serve` of the demo-like CRM (on SQLite and on
PostgreSQL) and pages in a real headless Chromium driven by Playwright for Python.

Use them in a test module by importing the fixtures:

    from tests.browser import browser, live_app, pages  # noqa: F401  (pytest fixtures)

- `live_app` (module scope, once per database): crm_standard with its sample data, an admin
  with a password and an API token (and `markup`, a user without roles whose name is an HTML
  payload), served by `python -m metacrm.engine.cli.main serve` on a
  free loopback port in its own process (as a user runs it); stopped at the end.
- `browser` (module scope): the machine's Debian Chromium (/usr/bin/chromium, or
  $METACRM_CHROMIUM) with the flags a CI container needs. Playwright's own browser downloads
  are never used. A missing Chromium or Playwright skips, and fails under CI=true.
- `pages` (per test): `pages.open(width, height)` gives a page in a fresh context (no cookies
  shared between pages) whose relative URLs go to the live app. A JavaScript error thrown on any
  page, or anything the Content-Security-Policy blocked, fails the test.
- `screenshots`: the folder screenshots go to ($METACRM_SCREENSHOTS, else a temp dir).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx2
import pytest
import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime, find_template
from metacrm.engine.sample_data import load_sample_data
from metacrm.engine.security import auth

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("METACRM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = (1280, 900)
PHONE = (390, 844)
START_TIMEOUT = 90.0  # seconds for the server to answer its first request
STOP_TIMEOUT = 15.0
UI_TIMEOUT_MS = 60_000  # a bound on what a step waits for (Swagger UI renders ~140 operations; CI machines are loaded)


@dataclass(frozen=True)
class Login:
    name: str
    email: str
    password: str
    token: str


@dataclass
class LiveApp:
    """A served CRM: its base URL, its database (for arranging and checking), its users."""

    url: str
    db_url: str
    database: str
    runtime: Runtime
    users: dict[str, Login]
    log: Path

    def api(self, who: str = "admin") -> httpx2.Client:
        """A plain HTTP client with `who`'s API token (close it, or use it in a with block)."""
        return httpx2.Client(base_url=self.url, timeout=15.0,
                             headers={"Authorization": f"Bearer {self.users[who].token}"})

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI=true: {reason}")
    pytest.skip(reason)


def _empty_database(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'live.db'}"
    url = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _demo_like(runtime: Runtime) -> dict[str, Login]:
    """crm_standard with its sample data and an admin, as `metacrm demo` sets it up."""
    template = find_template("crm_standard")
    runtime.apply(runtime.plan(template.objects, author="tests"))
    load_sample_data(RecordService(runtime), template.sample_data, SYSTEM)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Ada Admin", "ada@example.com", roles=["admin"], groups_=["sales"])
        auth.set_password(conn, admin.id, "ada-password-1")
        token = auth.create_token(conn, admin.id, "browser tests", auth.utcnow())
        # a user whose name is markup: every page must show it as text
        eve = identity.create_user(conn, '<img src=x onerror="window.pwned=1">Eve', "eve@example.com")
        auth.set_password(conn, eve.id, "eve-password-1")
        eve_token = auth.create_token(conn, eve.id, "browser tests", auth.utcnow())
    return {"admin": Login(admin.name, admin.email, "ada-password-1", token),
            "markup": Login(eve.name, eve.email, "eve-password-1", eve_token)}


def _serve(db_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def _wait_until_answering(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx2.Client(base_url=url, timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text('utf-8', 'replace')}")
            try:
                if probe.get("/api/v1/docs").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"the server did not answer within {START_TIMEOUT:.0f} s:\n{log.read_text('utf-8', 'replace')}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    folder = tmp_path_factory.mktemp(f"live_{request.param}")
    db_url = _empty_database(request.param, request, folder)
    runtime = Runtime.open(db_url)
    log = folder / "server.log"
    process = None
    try:
        users = _demo_like(runtime)
        process, url = _serve(db_url, log)
        _wait_until_answering(process, url, log)
        yield LiveApp(url, db_url, request.param, runtime, users, log)
    finally:
        if process is not None:
            _stop(process)
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module scope, not session: Playwright's sync API owns an event loop while it runs, which
    other test modules (asyncio, anyio) must not find running."""
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Pages:
    """Opens pages on the live app; collects the JavaScript errors thrown on any of them."""

    browser: Any
    base_url: str
    errors: list[str] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def open(self, width: int = DESKTOP[0], height: int = DESKTOP[1], **options: Any) -> Any:
        context = self.browser.new_context(base_url=self.base_url, viewport={"width": width, "height": height},
                                           **options)
        context.set_default_timeout(UI_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._policy_violation(page, message))
        return page

    def _policy_violation(self, page: Any, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"{page.url}: {message.text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, live_app: LiveApp) -> Iterator[Pages]:
    opened = Pages(browser, live_app.url)
    try:
        yield opened
    finally:
        opened.close()
    assert not opened.errors, "JavaScript errors or blocked content on the page:\n" + "\n".join(opened.errors)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("METACRM_SCREENSHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("screenshots")
