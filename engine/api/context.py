"""Who is calling: a Bearer API token or a session cookie (with CSRF on unsafe methods).

The result is an explicit Actor for the RecordService. Nothing is kept between requests
but the database rows of tokens and sessions, so any number of server processes agree.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from metacrm.engine.api.problems import Problem
from metacrm.engine.records.context import Actor
from metacrm.engine import identity
from metacrm.engine.security import auth

SESSION_COOKIE = "metacrm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def authenticate(request: Request) -> Actor:
    runtime = request.app.state.runtime
    now = auth.utcnow()
    header = request.headers.get("authorization", "")
    with runtime.db.read() as conn:
        runtime.ensure_current(conn)  # a revision applied by another process is in force from now on
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret:
                raise Problem(401, "use Authorization: Bearer <API token>")
            user = auth.user_for_token(conn, secret.strip(), now)
            if user is None:
                raise Problem(401, "the API token is unknown, expired or revoked")
        else:
            secret = request.cookies.get(SESSION_COOKIE)
            session = auth.session_for(conn, secret, now) if secret else None
            if session is None:
                raise Problem(401, "sign in, or send an API token")
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):  # bytes: any header
                    raise Problem(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
            user = identity.get_user(conn, session.user_id)
            if user is None or not user.active:
                raise Problem(401, "this account is not active")
        roles = identity.roles_of(conn, user.id)
    return Actor(user_id=user.id, language=_language(request, user.language), roles=roles, channel="api")


def _language(request: Request, default: str) -> str:
    wanted = request.headers.get("accept-language", "")
    for part in wanted.split(","):
        tag = part.split(";")[0].strip()
        if tag.lower().startswith("zh"):
            return "zh-TW" if tag.lower() in ("zh-tw", "zh-hk", "zh-hant") else "zh-CN"
        if tag:
            return tag
    return default or "en"
