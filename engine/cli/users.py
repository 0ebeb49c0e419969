"""`metacrm user ...`: create users, make, list and revoke API tokens.

A password never comes from the command line, where other users see it (`ps`) and the
shell keeps it (history): it is asked for at a terminal, or read from $METACRM_PASSWORD or,
with --password-stdin, from the first line of stdin.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.cli.errors import UsageError
from metacrm.engine.cli.output import dumps, print_records
from metacrm.engine.runtime import Runtime
from metacrm.engine.identity import audit
from metacrm.engine import identity
from metacrm.engine.security import auth

PASSWORD_ENV = "METACRM_PASSWORD"


def run(runtime: Runtime, args) -> int:
    handlers = {"create": create, "token": token, "tokens": tokens, "revoke-token": revoke_token}
    return handlers[args.action](runtime, args)


def read_password(args) -> str:
    """From --password-stdin, else $METACRM_PASSWORD, else a prompt (typed twice) at a terminal."""
    if args.password is not None:
        raise UsageError("--password is not accepted (other users can see it in the process list and it stays "
                         "in your shell history): type it at the prompt, or use --password-stdin or "
                         f"${PASSWORD_ENV}")
    if args.password_stdin:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        return line.rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(f"no password: run this at a terminal to be asked, or use --password-stdin or ${PASSWORD_ENV}")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise UsageError("the two passwords differ; nothing was created")
    return first


def _user_id(conn: Connection, email: str) -> str | None:
    return conn.execute(sa.select(identity.users.c.id).where(identity.users.c.email == email.strip().lower())).scalar()


def _check_new_user(runtime: Runtime, args) -> None:
    if not args.name.strip():
        raise UsageError("--name must not be empty")
    if not identity.valid_email(args.email):
        raise UsageError(f"{args.email!r} is not a valid email address (write name@example.com)")
    known = identity.known_roles(runtime.model.documents())
    unknown = sorted(set(args.role) - known)
    if unknown:
        raise UsageError(f"unknown role(s): {', '.join(unknown)}. Roles are admin and those the metadata names "
                         f"(permissions, transitions, role: recipients): {', '.join(sorted(known))}")


def create(runtime: Runtime, args) -> int:
    _check_new_user(runtime, args)
    password = read_password(args)
    try:
        auth.check_password_rules(password)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    password_hash = auth.hash_password(password)  # before the transaction: it is slow
    with runtime.db.begin() as conn:
        if _user_id(conn, args.email):
            raise UsageError(f"a user with email {args.email} exists already")
        manager = None
        if args.manager:
            manager = _user_id(conn, args.manager)
            if manager is None:
                raise UsageError(f"no user with email {args.manager}")
        made = identity.create_user(conn, args.name.strip(), args.email, language=args.language, manager=manager,
                                    roles=args.role, groups_=args.group)
        conn.execute(sa.update(identity.users).where(identity.users.c.id == made.id)
                     .values(password_hash=password_hash))
    print(dumps({"id": made.id, "email": made.email, "roles": args.role}))
    return 0


def token(runtime: Runtime, args) -> int:
    if args.days is not None and args.days < 1:
        raise UsageError("--days must be at least 1")
    longest = runtime.settings.token_lifetime
    if args.days is not None and args.days > longest.days:
        print(f"metacrm: tokens live at most {longest.days} days ($METACRM_TOKEN_MAX_DAYS); "
              f"this one expires after {longest.days}", file=sys.stderr)
    now = auth.utcnow()
    with runtime.db.begin() as conn:
        user_id = _user_id(conn, args.email)
        if user_id is None:
            raise UsageError(f"no user with email {args.email}")
        lifetime = timedelta(days=min(args.days, longest.days)) if args.days else None
        made = auth.issue_token(conn, user_id, args.name, now, lifetime, longest=longest)
        audit.record(conn, "token_created", now, detail={"token": made.id, "name": made.name, "for": user_id,
                                                          "channel": "cli"})
    print(made.secret)
    print(f"token {made.id} ({made.name}) expires {made.expires_at:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    return 0


def tokens(runtime: Runtime, args) -> int:
    with runtime.db.read() as conn:
        user_id = _user_id(conn, args.email)
        if user_id is None:
            raise UsageError(f"no user with email {args.email}")
        found = auth.list_tokens(conn, user_id, auth.utcnow(), longest=runtime.settings.token_lifetime)
    print_records(found, "table", sys.stdout, ["id", "name", "status", "created_at", "expires_at", "revoked_at"])
    return 0


def revoke_token(runtime: Runtime, args) -> int:
    now = auth.utcnow()
    with runtime.db.begin() as conn:
        owner = auth.token_owner(conn, args.id)
        if owner is None:
            raise UsageError(f"no token with id {args.id} (see: metacrm user tokens --email ...)")
        if not auth.revoke_token(conn, args.id, now):
            raise UsageError(f"token {args.id} was revoked already")
        audit.record(conn, "token_revoked", now, detail={"token": args.id, "for": owner, "channel": "cli"})
    print(dumps({"revoked": args.id}))
    return 0
