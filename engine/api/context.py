"""Who is calling, on which connection: a Bearer API token or a session cookie (with CSRF on
unsafe methods), resolved once per request.

`request_unit(request)` gives a handler one database connection (checked out on first use,
in one transaction) and the Actor; authentication, the revision check and the operation all
use it. Two short per-process caches keep the hot path off the database:

- the metadata revision is checked at most once every `revision_check` seconds
  (Settings.revision_check_seconds, $METACRM_REVISION_CHECK_SECONDS, default 1): a change
  applied through another process is in force here within that delay;
- a token's or session's user, language and roles are kept for `auth_cache` seconds
  (Settings.auth_cache_seconds, $METACRM_AUTH_CACHE_SECONDS, default 2), keyed by the secret's
  digest: a token revoked, a user deactivated or a role changed through another process (or
  the CLI) stops working here within that delay; revoking through this process, or signing
  out, takes effect at once.
0 turns either cache off.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.engine import Connection
from starlette.requests import Request

from metacrm.engine.api.problems import Problem
from metacrm.engine.identity.actor import Actor
from metacrm.engine import i18n, identity
from metacrm.engine.security import auth

SESSION_COOKIE = "metacrm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    """What authentication found, as cached: the user, their roles, and a session's CSRF token."""

    user_id: str
    language: str
    roles: frozenset[str]
    csrf: str | None = None


class Gate:
    """One per app (process): the revision clock and the short cache of callers."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.auth_cache = runtime.settings.auth_cache_seconds
        self.revision_check = runtime.settings.revision_check_seconds
        self._lock = threading.Lock()
        self._callers: dict[str, tuple[float, Caller]] = {}
        self._checked = float("-inf")
        self.generation = 0  # bumped by forget(): a look-up that started before is not kept

    def ensure_current(self, conn: Connection) -> None:
        """Reload if another process applied a newer revision; at most once per interval."""
        now = time.monotonic()
        if now - self._checked < self.revision_check:
            return
        self._checked = now
        self.runtime.ensure_current(conn)

    def revision_due(self) -> bool:
        return time.monotonic() - self._checked >= self.revision_check

    def cached(self, key: str) -> Caller | None:
        found = self._callers.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]

    def remember(self, key: str, caller: Caller, generation: int) -> None:
        if not self.auth_cache:
            return
        with self._lock:
            if generation != self.generation:  # a revoke or sign-out happened during the look-up
                return
            if len(self._callers) > 10_000:  # expired entries go when the cache grows
                now = time.monotonic()
                self._callers = {k: v for k, v in self._callers.items() if v[0] > now}
            self._callers[key] = (time.monotonic() + self.auth_cache, caller)

    def forget(self, key: str | None = None) -> None:
        """Drop one secret's entry (sign-out), or all of them (a token revoked: entries are by secret)."""
        with self._lock:
            self.generation += 1
            if key is None:
                self._callers.clear()
            else:
                self._callers.pop(key, None)


def gate(request: Request) -> Gate:
    state = request.app.state
    if getattr(state, "gate", None) is None:
        state.gate = Gate(state.runtime)
    return state.gate


class Unit:
    """One request's connection (one checkout, one read transaction, opened on first use) and actor."""

    def __init__(self, request: Request, stack: ExitStack) -> None:
        self.request = request
        self._stack = stack
        self._conn: Connection | None = None
        self.actor = authenticate(request, self)

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self._stack.enter_context(self.request.app.state.runtime.db.read())
        return self._conn


@contextmanager
def request_unit(request: Request) -> Iterator[Unit]:
    """The connection and actor of one request; the transaction ends when the block does."""
    with ExitStack() as stack:
        yield Unit(request, stack)


def authenticate(request: Request, unit: Unit | None = None) -> Actor:
    """The caller as an Actor, or Problem(401/403). Uses `unit`'s connection when given (else
    one of its own), and none at all when the caches answer."""
    if unit is None:
        with request_unit(request) as own:
            return own.actor
    keeper = gate(request)
    if keeper.revision_due():
        keeper.ensure_current(unit.conn)  # a revision applied by another process is in force from now on
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Problem(401, "use Authorization: Bearer <API token>")
        caller = _token_caller(keeper, unit, secret.strip())
    else:
        secret = request.cookies.get(SESSION_COOKIE)
        caller = _session_caller(keeper, unit, secret) if secret else None
        if caller is None:
            raise Problem(401, "sign in, or send an API token")
        if request.method not in SAFE_METHODS:
            # the header (API clients, htmx), or the form field of a plain HTML form post (engine.web)
            sent = request.headers.get(CSRF_HEADER, "") or getattr(request.state, "form_csrf", "")
            if not sent or not hmac.compare_digest(sent.encode(), (caller.csrf or "").encode()):  # bytes: any header
                raise Problem(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
    request.state.caller = caller  # the web UI embeds the session's CSRF token in its pages
    request.state.user_language = caller.language  # problems told after this point fall back to it
    return Actor(user_id=caller.user_id, language=_language(request, caller.language), roles=caller.roles,
                 channel="api")


def cache_key(kind: str, secret: str) -> str:
    return kind + ":" + hashlib.sha256(secret.encode()).hexdigest()


def _token_caller(keeper: Gate, unit: Unit, secret: str) -> Caller:
    key = cache_key("token", secret)
    caller = keeper.cached(key)
    if caller is None:
        generation = keeper.generation
        user = auth.user_for_token(unit.conn, secret, auth.utcnow(), longest=keeper.runtime.settings.token_lifetime)
        if user is None:
            raise Problem(401, "the API token is unknown, expired or revoked")
        caller = Caller(user.id, user.language, identity.roles_of(unit.conn, user.id))
        keeper.remember(key, caller, generation)
    return caller


def _session_caller(keeper: Gate, unit: Unit, secret: str) -> Caller | None:
    key = cache_key("session", secret)
    caller = keeper.cached(key)
    if caller is None:
        generation = keeper.generation
        session = auth.session_for(unit.conn, secret, auth.utcnow())
        if session is None:
            return None
        user = identity.get_user(unit.conn, session.user_id)
        if user is None or not user.active:
            raise Problem(401, "this account is not active")
        caller = Caller(user.id, user.language, identity.roles_of(unit.conn, user.id), session.csrf)
        keeper.remember(key, caller, generation)
    return caller


def _language(request: Request, default: str) -> str:
    """The caller's language: Accept-Language (with quality values), else `default` (the user's), else English."""
    return i18n.negotiate(request.headers.get("accept-language"), default)
