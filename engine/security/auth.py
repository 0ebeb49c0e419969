"""Passwords, API tokens, sessions and sign-in throttling.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher) with OWASP's recommended
parameters (19 MiB, 2 passes, 1 lane: tens of milliseconds). Hashes of an older scheme
(scrypt) still verify and are replaced with argon2id on the next successful sign-in, as are
argon2 hashes made with other parameters than today's (`check_needs_rehash`).

Verifying is slow on purpose, so sign-in must not tell known from unknown emails by its
speed: an unknown (or inactive) email is verified against a dummy hash made with the same
parameters. At most HASH_CONCURRENCY hashes run at once (bounding memory), and `sign_in`
does the hashing outside any transaction (a SQLite writer would hold the write lock).

API tokens and session ids are random, shown once, and stored only as SHA-256 digests;
tokens expire (at most the policy's lifetime, $METACRM_TOKEN_MAX_DAYS) and can be revoked.
Failed sign-ins are throttled per (email, address) and, with a higher limit, per address —
never per email alone, or anyone could lock anyone out by failing on purpose.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from metacrm.engine import identity
from metacrm.engine.identity import audit
from metacrm.engine.security.ratelimit import wait_seconds
from metacrm.engine.storage.columns import ID_TYPE, UTCDateTime
from metacrm.engine.storage.ids import new_id
from metacrm.engine.storage.tables import new_metadata

log = logging.getLogger("metacrm.auth")

MIN_PASSWORD = 8
HASH_CONCURRENCY = 4
MAX_PAIR_FAILURES = 5        # one email from one address
MAX_ADDRESS_FAILURES = 20    # any emails from one address (password spraying)
FAILURE_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
DEFAULT_TOKEN_MAX_DAYS = 90  # Settings.token_max_days ($METACRM_TOKEN_MAX_DAYS)
DEFAULT_TOKEN_LIFETIME = timedelta(days=DEFAULT_TOKEN_MAX_DAYS)
UNKNOWN_ADDRESS = "unknown"

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_hashing = threading.BoundedSemaphore(HASH_CONCURRENCY)

#: tokens, sessions and login failures; engine.system_schema lists them
METADATA = new_metadata()

tokens = sa.Table(
    "metacrm_api_token", METADATA,
    sa.Column("id", ID_TYPE, primary_key=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(identity.users.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
)
sessions = sa.Table(
    "metacrm_session", METADATA,
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(identity.users.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)
login_failures = sa.Table(
    "metacrm_login_failure", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("address", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_login_failure_email", "email", "at"),
    sa.Index("ix_metacrm_login_failure_address", "address", "at"),
)
TABLES: tuple[sa.Table, ...] = (tokens, sessions, login_failures)


# -- passwords ---------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


@functools.cache
def dummy_hash() -> str:
    """What unknown emails are verified against: a real argon2id hash of a random secret."""
    return hash_password(secrets.token_urlsafe(24))


def is_argon2(stored: str | None) -> bool:
    return bool(stored) and stored.startswith("$argon2")


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`; always one full verification, even without a hash."""
    if stored and stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    target = stored if is_argon2(stored) else dummy_hash()
    try:
        with _hashing:
            matched = _hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and target is stored


def needs_rehash(stored: str) -> bool:
    """True for scrypt hashes and for argon2 hashes made with other parameters than today's."""
    try:
        return not is_argon2(stored) or _hasher.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    """Hashes made before argon2: scrypt$n$r$p$salt$digest (base64)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                  maxmem=64 * 1024 * 1024)
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")


def set_password(conn: Connection, user_id: str, password: str) -> None:
    check_password_rules(password)
    conn.execute(sa.update(identity.users).where(identity.users.c.id == user_id)
                 .values(password_hash=hash_password(password)))


# -- signing in ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    """The signed-in user and their new session (secret, CSRF token), or why not."""

    user: identity.User | None
    retry_after: int | None = None
    session: tuple[str, str] | None = None

    @property
    def throttled(self) -> bool:
        return self.retry_after is not None


def throttle_wait(conn: Connection, email: str, address: str, now: datetime) -> int | None:
    """Seconds to wait before this email may be tried from this address again, or None."""
    f = login_failures
    waits = (wait_seconds(conn, f.c.at, sa.and_(f.c.email == email, f.c.address == address),
                          MAX_PAIR_FAILURES, FAILURE_WINDOW, now),
             wait_seconds(conn, f.c.at, f.c.address == address, MAX_ADDRESS_FAILURES, FAILURE_WINDOW, now))
    return max((w for w in waits if w is not None), default=None)


def sign_in(db, email: str, password: str, address: str | None, now: datetime) -> LoginResult:
    """Check email and password and open a session; audited. Blocking (hashes): the API runs
    it in a worker thread. Unknown emails cost one verification, like known ones."""
    email, address = (email or "").strip().lower(), address or UNKNOWN_ADDRESS
    with db.read() as conn:
        wait = throttle_wait(conn, email, address, now)
        row = None if wait else conn.execute(
            sa.select(identity.users.c.id, identity.users.c.password_hash)
            .where(identity.users.c.email == email, identity.users.c.active.is_(True))).first()
    if wait:
        with db.begin() as conn:
            audit.record(conn, "login_throttled", now, detail={"email": email}, address=address)
        return LoginResult(None, retry_after=wait)
    stored = row.password_hash if row is not None else None
    matched = verify_password(password or "", stored) and row is not None
    fresh = hash_password(password) if matched and needs_rehash(stored) else None
    with db.begin() as conn:
        if not matched:
            conn.execute(login_failures.insert().values(email=email, address=address, at=now))
            audit.record(conn, "login_failed", now, detail={"email": email}, address=address)
            return LoginResult(None)
        if fresh:  # unless the password was changed meanwhile
            conn.execute(sa.update(identity.users).where(identity.users.c.id == row.id,
                                                         identity.users.c.password_hash == stored)
                         .values(password_hash=fresh))
        conn.execute(sa.delete(login_failures).where(login_failures.c.email == email,
                                                     login_failures.c.address == address))
        session = create_session(conn, row.id, now)
        audit.record(conn, "login", now, user_id=row.id, address=address)
        return LoginResult(identity.get_user(conn, row.id), session=session)


# -- API tokens ------------------------------------------------------------------------------

@dataclass(frozen=True)
class IssuedToken:
    id: str
    secret: str
    name: str
    expires_at: datetime


def issue_token(conn: Connection, user_id: str, name: str, now: datetime,
                expires_in: timedelta | None = None, *, longest: timedelta = DEFAULT_TOKEN_LIFETIME) -> IssuedToken:
    """A new API token; the secret is shown once and never stored. A missing or longer
    lifetime than the policy allows (`longest`: Settings.token_lifetime) is cut to it."""
    lifetime = longest if expires_in is None else min(expires_in, longest)
    token = IssuedToken(new_id(), "mcrm_" + secrets.token_urlsafe(32), name, now + lifetime)
    conn.execute(tokens.insert().values(id=token.id, user_id=user_id, name=name, digest=_digest(token.secret),
                                        created_at=now, expires_at=token.expires_at))
    return token


def create_token(conn: Connection, user_id: str, name: str, now: datetime, expires_in: timedelta | None = None,
                 *, longest: timedelta = DEFAULT_TOKEN_LIFETIME) -> str:
    """The secret of a new token (see issue_token)."""
    return issue_token(conn, user_id, name, now, expires_in, longest=longest).secret


def _live(now: datetime, longest: timedelta) -> sa.ColumnElement[bool]:
    """Not revoked, not expired, and younger than the policy's maximum (so lowering the
    maximum also shortens tokens made before, and tokens made without an expiry)."""
    return sa.and_(tokens.c.revoked_at.is_(None), tokens.c.created_at > now - longest,
                   sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now))


def list_tokens(conn: Connection, user_id: str, now: datetime, limit: int = 1000, *,
                longest: timedelta = DEFAULT_TOKEN_LIFETIME) -> list[dict[str, Any]]:
    """A user's tokens, newest first: id, name, dates and status — never the secret or its digest."""
    t = tokens
    rows = conn.execute(sa.select(t.c.id, t.c.name, t.c.created_at, t.c.expires_at, t.c.revoked_at,
                                  _live(now, longest).label("live"))
                        .where(t.c.user_id == user_id).order_by(t.c.created_at.desc(), t.c.id).limit(limit))
    found = []
    for row in rows:
        cap = row.created_at + longest
        expires = cap if row.expires_at is None else min(row.expires_at, cap)
        status = "revoked" if row.revoked_at else "active" if row.live else "expired"
        found.append({"id": row.id, "name": row.name, "created_at": row.created_at, "expires_at": expires,
                      "revoked_at": row.revoked_at, "status": status})
    return found


def _token_id(value: Any) -> str | None:
    """A token id in canonical form, or None for anything that is not a UUID."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def token_owner(conn: Connection, token_id: str) -> str | None:
    token_id = _token_id(token_id)
    if token_id is None:
        return None
    return conn.execute(sa.select(tokens.c.user_id).where(tokens.c.id == token_id)).scalar()


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    token_id = _token_id(token_id)
    return token_id is not None and conn.execute(
        sa.update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)).rowcount == 1


def user_for_token(conn: Connection, secret: str, now: datetime, *,
                   longest: timedelta = DEFAULT_TOKEN_LIFETIME) -> identity.User | None:
    """The active user of a live token (one query: token joined to its user); `longest` is the
    token lifetime policy (Settings.token_lifetime)."""
    users = identity.users
    row = conn.execute(
        sa.select(users.c.id, users.c.name, users.c.email, users.c.language, users.c.manager, users.c.active)
        .join(tokens, tokens.c.user_id == users.c.id)
        .where(tokens.c.digest == _digest(secret), users.c.active.is_(True), _live(now, longest))).first()
    return identity.User(*row) if row else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# -- sessions ----------------------------------------------------------------------------------

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
