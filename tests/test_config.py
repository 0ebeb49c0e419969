"""Settings are read from the environment once, at the edge (the CLI, the server's process
factory), and passed down: a Runtime built with explicit Settings runs by them whatever the
environment says; every documented variable still works. SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine.api.app import create_app
from metacrm.engine.automation.worker import Worker
from metacrm.engine.config import VARIABLES, Settings
from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.runtime import Runtime
from metacrm.engine.security import auth
from metacrm.engine import identity
from metacrm.engine.storage.database import SettingError, Timeouts

ROOT = Path(__file__).resolve().parent.parent

#: a hostile environment: every value differs from what the test passes (or is unusable)
ENVIRONMENT = {
    "METACRM_POOL_SIZE": "3", "METACRM_LOCK_TIMEOUT": "9", "METACRM_STATEMENT_TIMEOUT": "nope",
    "METACRM_AUTH_CACHE_SECONDS": "-1", "METACRM_TOKEN_MAX_DAYS": "1", "METACRM_SMTP_URL": "smtp://env.example:2525",
    "METACRM_INTAKE_PER_HOUR": "1",
}


def lock_wait_ms(runtime: Runtime) -> int:
    """How long a statement waits for a lock on this connection, as the database itself says."""
    with runtime.db.read() as conn:
        if runtime.db.is_postgresql:  # pg_settings gives it in its unit, milliseconds
            return int(conn.exec_driver_sql("SELECT setting FROM pg_settings WHERE name = 'lock_timeout'").scalar())
        return conn.exec_driver_sql("PRAGMA busy_timeout").scalar()


def test_a_runtime_runs_by_the_settings_it_is_given_whatever_the_environment_says(db_url, monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere.db"
    for var, value in {**ENVIRONMENT, "METACRM_DATABASE_URL": f"sqlite:///{elsewhere}"}.items():
        monkeypatch.setenv(var, value)
    settings = Settings(database_url=db_url, pool_size=4, timeouts=Timeouts(lock=2.0), token_max_days=30,
                        mail=MailSettings("smtp.example.org", 587, "crm@example.org"))
    runtime = Runtime.open(settings=settings)
    try:
        assert runtime.db.url == db_url and not elsewhere.exists()
        assert runtime.db.pool_size == 4 and lock_wait_ms(runtime) == 2000
        assert Worker(runtime).mail == settings.mail
        with runtime.db.begin() as conn:
            user = identity.create_user(conn, "Ada", "ada@example.com", roles=["admin"])
            token = auth.create_token(conn, user.id, "t", auth.utcnow())
        http = TestClient(create_app(runtime))  # a bad $METACRM_AUTH_CACHE_SECONDS would refuse to start
        made = http.post("/api/v1/auth/tokens", json={"name": "ci"}, headers={"Authorization": f"Bearer {token}"})
        assert made.status_code == 201, made.text
        with runtime.db.read() as conn:
            row = conn.execute(sa.select(auth.tokens).where(auth.tokens.c.id == made.json()["id"])).one()
        assert row.expires_at - row.created_at == timedelta(days=30)  # the settings' cap, not the environment's
    finally:
        runtime.close()


def test_every_documented_variable_sets_its_setting():
    settings = Settings.from_env({
        "METACRM_DATABASE_URL": "postgres://crm@db/crm", "METACRM_POOL_SIZE": "25",
        "METACRM_STATEMENT_TIMEOUT": "12", "METACRM_LOCK_TIMEOUT": "3.5", "METACRM_CONNECT_TIMEOUT": "0",
        "METACRM_AUTH_CACHE_SECONDS": "0", "METACRM_REVISION_CHECK_SECONDS": "5", "METACRM_TOKEN_MAX_DAYS": "7",
        "METACRM_INTAKE_PER_HOUR": "50", "METACRM_SMTP_URL": "smtp://mail.example.org:2525",
        "METACRM_MAIL_FROM": "CRM <crm@example.org>", "METACRM_MAIL_DOMAIN": "example.org"})
    assert settings == Settings(
        database_url="postgresql+psycopg://crm@db/crm", pool_size=25, timeouts=Timeouts(12, 3.5, 0),
        auth_cache_seconds=0, revision_check_seconds=5, token_max_days=7, intake_per_hour=50,
        mail=MailSettings("mail.example.org", 2525, "CRM <crm@example.org>", domain="example.org"))
    assert Settings.from_env({}) == Settings()  # an unset environment is the defaults
    assert Settings.from_env(settings.environment()) == settings  # what `serve --workers` hands its processes


@pytest.mark.parametrize("var, value", [
    ("METACRM_POOL_SIZE", "0"), ("METACRM_POOL_SIZE", "many"), ("METACRM_LOCK_TIMEOUT", "nan"),
    ("METACRM_STATEMENT_TIMEOUT", "-1"), ("METACRM_AUTH_CACHE_SECONDS", "61"),
    ("METACRM_REVISION_CHECK_SECONDS", "soon"), ("METACRM_SMTP_URL", "smtp://host:port"),
])
def test_an_unusable_setting_is_refused_naming_the_variable(var, value):
    with pytest.raises(SettingError, match=rf"\${var} .*{value!r}"):
        Settings.from_env({var: value})


def test_the_command_line_reads_the_environment_and_says_what_is_wrong(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    done = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", url, "init"],
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("METACRM_")},
                               "METACRM_REVISION_CHECK_SECONDS": "never"},
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("metacrm: $METACRM_REVISION_CHECK_SECONDS must be")
    assert not (tmp_path / "crm.db").exists()  # refused before touching the database


def test_every_variable_is_documented_in_the_deployment_guide():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert [var for var in VARIABLES if f"`{var}`" not in guide] == []


#: where reading the environment belongs: the settings, the command line, the server's process
#: factory, and webhook secrets that metadata names by variable (never stores)
EDGES = {"engine/config.py", "engine/cli/main.py", "engine/cli/users.py", "engine/api/server.py",
         "engine/automation/delivery.py"}


def test_the_engine_reads_the_environment_only_at_its_edges():
    readers = set()
    for path in (ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.add(str(path.relative_to(ROOT)))
    assert readers <= EDGES, sorted(readers - EDGES)
    assert "engine/config.py" in readers  # the check sees a read where there is one
