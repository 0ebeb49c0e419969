"""/api/v1/auth: sign in and out (session cookie + CSRF token), API tokens.

The caller's address is `request.client.host`. Behind a reverse proxy that is the proxy's
address unless uvicorn trusts its X-Forwarded-For header (`FORWARDED_ALLOW_IPS`, by default
only a proxy on the same machine): otherwise every client shares one address and its sign-in limit.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api.bodies import awaited, read_object
from metacrm.engine.api.context import SESSION_COOKIE, authenticate, cache_key, gate
from metacrm.engine.api.problems import Problem
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.identity import audit
from metacrm.engine.security import auth


MAX_LOGIN_EMAIL = 320
MAX_TOKEN_NAME = 200


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def too_many(detail: str, retry_after: int) -> Problem:
    """429 with Retry-After (seconds) in the header and the body."""
    return Problem(429, detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


def login(request: Request) -> Response:
    data = awaited(read_object, request)
    email, password = data.get("email"), data.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise Problem(400, "send email and password")
    if len(email) > MAX_LOGIN_EMAIL or "\x00" in email or "\x00" in password:
        raise Problem(400, f"email (at most {MAX_LOGIN_EMAIL} characters) and password must be text without NUL "
                           "characters")
    runtime = request.app.state.runtime
    # hashing takes tens of milliseconds of CPU: like every handler, this runs in the thread pool
    result = auth.sign_in(runtime.db, email, password, client_address(request), auth.utcnow())
    if result.throttled:
        raise too_many("too many failed sign-ins; wait and try again", result.retry_after)
    if result.user is None or result.session is None:
        raise Problem(401, "wrong email or password")
    secret, csrf = result.session
    response = JSONResponse({"user": {"id": result.user.id, "name": result.user.name}, "csrf_token": csrf})
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        max_age=int(auth.SESSION_LIFETIME.total_seconds()), path="/")
    return response


def logout(request: Request) -> Response:
    authenticate(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        with request.app.state.runtime.db.begin() as conn:
            auth.end_session(conn, secret)
        gate(request).forget(cache_key("session", secret))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def tokens(request: Request) -> Response:
    """GET: the caller's own tokens (never their secrets). POST: a new token for the caller,
    shown once. Body: {"name": ..., "expires_in_days": 30}; the lifetime is capped by policy."""
    actor = authenticate(request)
    now = auth.utcnow()
    if request.method == "GET":
        with request.app.state.runtime.db.read() as conn:
            found = auth.list_tokens(conn, actor.user_id, now,
                                     longest=request.app.state.runtime.settings.token_lifetime)
        return JSONResponse({"tokens": to_jsonable(found)})
    data = awaited(read_object, request)
    name = data.get("name")
    days = data.get("expires_in_days")
    if not isinstance(name, str) or not name.strip():
        raise Problem(400, "give the token a name")
    if len(name) > MAX_TOKEN_NAME or "\x00" in name:
        raise Problem(400, f"the token name must be text of at most {MAX_TOKEN_NAME} characters, without NUL")
    if isinstance(days, float) and days.is_integer():
        days = int(days)  # 30.0 is the whole number 30 in JSON (and in the OpenAPI document's "integer")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
        raise Problem(400, "expires_in_days must be a whole number of days, at least 1")
    runtime = request.app.state.runtime
    longest = runtime.settings.token_lifetime
    lifetime = None if days is None else timedelta(days=min(days, longest.days))
    with runtime.db.begin() as conn:
        made = auth.issue_token(conn, actor.user_id, name.strip(), now, lifetime, longest=longest)
        audit.record(conn, "token_created", now, user_id=actor.user_id, detail={"token": made.id, "name": made.name})
    return JSONResponse(to_jsonable({"id": made.id, "token": made.secret, "name": made.name,
                                     "expires_at": made.expires_at}), status_code=201)


def revoke(request: Request) -> Response:
    """DELETE /api/v1/auth/tokens/{id}: your own token (admins: anyone's)."""
    actor = authenticate(request)
    now = auth.utcnow()
    token_id = request.path_params["id"]
    with request.app.state.runtime.db.begin() as conn:
        owner = auth.token_owner(conn, token_id)
        if owner is None or (owner != actor.user_id and "admin" not in actor.roles):
            raise Problem(404, "no such token")
        auth.revoke_token(conn, token_id, now)
        audit.record(conn, "token_revoked", now, user_id=actor.user_id, detail={"token": token_id})
    gate(request).forget()  # the cache is keyed by secret, not id: this process forgets every token at once
    return Response(status_code=204)
