"""Passwords, API tokens, sessions and login throttling.

Passwords are hashed with scrypt (hashlib, memory-hard; parameters stored with the hash so
they can be raised later). API tokens and session ids are random, shown once, and stored
only as SHA-256 digests; tokens can expire and be revoked. Failed logins are counted per
email and per client address in a sliding window and throttled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.security import identity
from engine.storage.columns import ID_TYPE, UTCDateTime
from engine.storage.metastore import SYSTEM_METADATA

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)

tokens = sa.Table(
    "metacrm_api_token", SYSTEM_METADATA,
    sa.Column("id", ID_TYPE, primary_key=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
)
sessions = sa.Table(
    "metacrm_session", SYSTEM_METADATA,
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)
login_failures = sa.Table(
    "metacrm_login_failure", SYSTEM_METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("address", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_login_failure_email", "email", "at"),
)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 1024 * 1024, **SCRYPT)
    params = f"{SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, n, r, p, salt, digest = stored.split("$")
    computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                              maxmem=64 * 1024 * 1024)
    return hmac.compare_digest(computed, base64.b64decode(digest))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def set_password(conn: Connection, user_id: str, password: str) -> None:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    conn.execute(sa.update(identity.users).where(identity.users.c.id == user_id)
                 .values(password_hash=hash_password(password)))


@dataclass(frozen=True)
class LoginResult:
    user: identity.User | None
    throttled: bool = False


def check_login(conn: Connection, email: str, password: str, address: str | None, now: datetime) -> LoginResult:
    """The user if email and password match; throttled after repeated failures."""
    email = (email or "").strip().lower()
    since = now - FAILURE_WINDOW
    failures = conn.execute(sa.select(sa.func.count()).select_from(login_failures).where(
        login_failures.c.at >= since,
        sa.or_(login_failures.c.email == email, login_failures.c.address == address) if address
        else login_failures.c.email == email)).scalar_one()
    if failures >= MAX_FAILURES:
        return LoginResult(None, throttled=True)
    row = conn.execute(sa.select(identity.users).where(identity.users.c.email == email,
                                                      identity.users.c.active.is_(True))).first()
    if row is None or not verify_password(password or "", row.password_hash):
        conn.execute(login_failures.insert().values(email=email, address=address, at=now))
        return LoginResult(None)
    return LoginResult(identity.get_user(conn, row.id))


def create_token(conn: Connection, user_id: str, name: str, now: datetime, expires_in: timedelta | None = None) -> str:
    """A new API token; the returned secret is shown once and never stored."""
    from engine.records.ids import new_id

    secret = "mcrm_" + secrets.token_urlsafe(32)
    conn.execute(tokens.insert().values(id=new_id(), user_id=user_id, name=name, digest=_digest(secret),
                                        created_at=now, expires_at=now + expires_in if expires_in else None))
    return secret


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    return conn.execute(sa.update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount == 1


def user_for_token(conn: Connection, secret: str, now: datetime) -> identity.User | None:
    """The active user of a live token (one query: token joined to its user)."""
    users = identity.users
    row = conn.execute(
        sa.select(users.c.id, users.c.name, users.c.email, users.c.language, users.c.manager, users.c.active)
        .join(tokens, tokens.c.user_id == users.c.id)
        .where(tokens.c.digest == _digest(secret), tokens.c.revoked_at.is_(None), users.c.active.is_(True),
               sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now))).first()
    return identity.User(*row) if row else None


def create_session(conn: Connection, user_id: str, now: datetime) -> tuple[str, str]:
    """(session secret for the cookie, CSRF token for forms)."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    conn.execute(sessions.insert().values(digest=_digest(secret), user_id=user_id, csrf=csrf, created_at=now,
                                          expires_at=now + SESSION_LIFETIME))
    return secret, csrf


def session_for(conn: Connection, secret: str, now: datetime):
    row = conn.execute(sa.select(sessions).where(sessions.c.digest == _digest(secret))).first()
    if row is None or row.expires_at <= now:
        return None
    return row


def end_session(conn: Connection, secret: str) -> None:
    conn.execute(sa.delete(sessions).where(sessions.c.digest == _digest(secret)))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
