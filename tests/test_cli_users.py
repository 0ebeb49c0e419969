"""`metacrm user ...` run as a real process against SQLite and PostgreSQL: passwords never on
the command line, unknown roles and malformed emails refused, tokens listed and revoked."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from metacrm.engine.runtime import Runtime
from metacrm.engine import identity
from metacrm.engine.security import auth

ROOT = Path(__file__).resolve().parent.parent
DEAL = """\
name: deal
fields:
  - {name: name, type: text, required: true}
permissions:
  sales_rep: {create: true, read: own, edit: own}
"""


def cli(db_url: str, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "METACRM_PASSWORD"} | (env or {})
    return subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, *args],
                          input=stdin if stdin is not None else "", capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env=environment)


@pytest.fixture
def db(db_url, tmp_path):
    (tmp_path / "deal.yaml").write_text(DEAL)
    assert cli(db_url, "apply", str(tmp_path / "deal.yaml")).returncode == 0
    return db_url


def users(db_url: str) -> dict[str, str | None]:
    runtime = Runtime.open(db_url)
    try:
        with runtime.db.engine.connect() as conn:
            return {r.email: r.password_hash for r in conn.execute(sa.select(identity.users))}
    finally:
        runtime.close()


def test_passwords_come_from_a_prompt_stdin_or_the_environment_never_argv(db):
    refused = cli(db, "user", "create", "--name", "Ada", "--email", "ada@example.com", "--password", "hunter2hunter2")
    assert refused.returncode == 2 and "--password is not accepted" in refused.stderr
    assert "Traceback" not in refused.stderr
    none = cli(db, "user", "create", "--name", "Ada", "--email", "ada@example.com")
    assert none.returncode == 2 and "--password-stdin" in none.stderr and "METACRM_PASSWORD" in none.stderr
    assert users(db) == {}
    piped = cli(db, "user", "create", "--name", "Ada", "--email", "ada@example.com", "--role", "admin",
                "--password-stdin", stdin="correct horse battery\n")
    assert piped.returncode == 0, piped.stderr
    from_env = cli(db, "user", "create", "--name", "Sam", "--email", "sam@example.com", "--role", "sales_rep",
                   "--manager", "ada@example.com", env={"METACRM_PASSWORD": "sam's password"})
    assert from_env.returncode == 0, from_env.stderr
    short = cli(db, "user", "create", "--name", "Tim", "--email", "tim@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    stored = users(db)
    assert set(stored) == {"ada@example.com", "sam@example.com"}
    assert auth.verify_password("correct horse battery", stored["ada@example.com"])
    assert auth.verify_password("sam's password", stored["sam@example.com"])
    assert all(h.startswith("$argon2id$") for h in stored.values())


def read_until(fd: int, wanted: str, seen: bytearray, timeout: float = 60) -> None:
    """Read the terminal until `wanted` appears (or the program ends, or the time is up)."""
    deadline = time.monotonic() + timeout
    while wanted.encode() not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the program closed the terminal: it ended
                return
            if not chunk:
                return
            seen += chunk


def run_at_terminal(db: str, email: str, answers: list[str]) -> tuple[int, str]:
    """`user create` with a pseudo-terminal as stdin, answering each password prompt once it shows
    (getpass discards what was typed before it asks)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db, "user", "create",
                                "--name", "Ada", "--email", email], stdin=terminal, stdout=terminal,
                               stderr=terminal, cwd=ROOT, start_new_session=True,
                               env={k: v for k, v in os.environ.items() if k != "METACRM_PASSWORD"})
    os.close(terminal)
    seen = bytearray()
    try:
        for prompt, answer in zip(("Password: ", "Password again: "), answers):
            read_until(controller, prompt, seen)
            os.write(controller, (answer + "\n").encode())
        read_until(controller, "\x00never", seen, timeout=60)
        return process.wait(timeout=60), seen.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()


def test_at_a_terminal_the_password_is_asked_for_twice(db):
    code, output = run_at_terminal(db, "ada@example.com", ["first password", "other password"])
    assert code == 2 and "differ" in output and "Password again" in output
    assert users(db) == {}
    code, output = run_at_terminal(db, "ada@example.com", ["typed at the prompt", "typed at the prompt"])
    assert code == 0, output
    assert "typed at the prompt" not in output  # not echoed
    assert auth.verify_password("typed at the prompt", users(db)["ada@example.com"])


REFUSED = [
    (("--email", "not-an-email"), "'not-an-email' is not a valid email address"),
    (("--email", "two@@example.com"), "is not a valid email address"),
    (("--email", "a b@example.com"), "is not a valid email address"),
    (("--email", "ok@example.com", "--role", "amdin"), "unknown role(s): amdin"),
    (("--email", "ok@example.com", "--role", "sales_rep", "--role", "salesrep"), "unknown role(s): salesrep"),
    (("--email", "ok@example.com", "--name", " "), "--name must not be empty"),
    (("--email", "ok@example.com", "--manager", "nobody@example.com"), "no user with email nobody@example.com"),
]


def test_unknown_roles_and_malformed_emails_are_refused(db):
    for args, message in REFUSED:
        result = cli(db, "user", "create", "--name", "X", *args, env={"METACRM_PASSWORD": "long enough"})
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if "role" in message:
            assert "admin, sales_rep" in result.stderr  # says which roles exist
    assert users(db) == {}
    made = cli(db, "user", "create", "--name", "X", "--email", "ok@example.com", "--role", "sales_rep",
               env={"METACRM_PASSWORD": "long enough"})
    assert made.returncode == 0 and json.loads(made.stdout)["roles"] == ["sales_rep"]


def test_tokens_are_listed_and_revoked_from_the_command_line(db):
    env = {"METACRM_PASSWORD": "long enough"}
    assert cli(db, "user", "create", "--name", "Sam", "--email", "sam@example.com", env=env).returncode == 0
    made = cli(db, "user", "token", "--email", "sam@example.com", "--name", "laptop", "--days", "1000")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("mcrm_") and "at most 90 days" in made.stderr
    listed = cli(db, "user", "tokens", "--email", "sam@example.com")
    assert listed.returncode == 0 and secret not in listed.stdout
    (row,) = [line for line in listed.stdout.splitlines() if "laptop" in line]
    token_id = row.split()[0]
    assert "active" in row and token_id in made.stderr
    runtime = Runtime.open(db)
    try:
        with runtime.db.engine.connect() as conn:
            created, expires = conn.execute(sa.select(auth.tokens.c.created_at, auth.tokens.c.expires_at)).one()
            assert auth.user_for_token(conn, secret, auth.utcnow()) is not None
        revoked = cli(db, "user", "revoke-token", token_id)
        assert revoked.returncode == 0 and json.loads(revoked.stdout) == {"revoked": token_id}
        with runtime.db.engine.connect() as conn:
            assert auth.user_for_token(conn, secret, auth.utcnow()) is None
    finally:
        runtime.close()
    assert (expires - created).days == auth.DEFAULT_TOKEN_MAX_DAYS
    assert "revoked" in cli(db, "user", "tokens", "--email", "sam@example.com").stdout
    for bad, words in ((token_id, "revoked already"), ("nope", "no token with id nope")):
        again = cli(db, "user", "revoke-token", bad)
        assert again.returncode == 2 and words in again.stderr and "Traceback" not in again.stderr
