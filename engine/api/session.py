"""/api/v1/auth: sign in and out (session cookie + CSRF token), API tokens."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.api.bodies import read_object
from engine.api.context import SESSION_COOKIE, authenticate
from engine.api.problems import Problem
from engine.security import audit, auth


MAX_LOGIN_EMAIL = 320
MAX_TOKEN_NAME = 200


def canonical_id(text: str) -> str | None:
    """A UUID path parameter in canonical form, or None: anything else names nothing, and must not
    reach a UUID column (PostgreSQL would refuse the query)."""
    compact = text.strip().lower().replace("-", "")
    if len(compact) != 32 or any(ch not in "0123456789abcdef" for ch in compact):
        return None
    return f"{compact[:8]}-{compact[8:12]}-{compact[12:16]}-{compact[16:20]}-{compact[20:]}"


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def login(request: Request) -> Response:
    data = await read_object(request)
    email, password = data.get("email"), data.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise Problem(400, "send email and password")
    if len(email) > MAX_LOGIN_EMAIL or "\x00" in email or "\x00" in password:
        raise Problem(400, f"email (at most {MAX_LOGIN_EMAIL} characters) and password must be text without NUL "
                           "characters")
    runtime, now = request.app.state.runtime, auth.utcnow()
    with runtime.db.begin() as conn:
        result = auth.check_login(conn, email, password, _address(request), now)
        if result.throttled:
            audit.record(conn, "login_throttled", now, detail={"email": email}, address=_address(request))
        elif result.user is None:
            audit.record(conn, "login_failed", now, detail={"email": email}, address=_address(request))
        else:
            secret, csrf = auth.create_session(conn, result.user.id, now)
            audit.record(conn, "login", now, user_id=result.user.id, address=_address(request))
    if result.throttled:
        raise Problem(429, "too many failed sign-ins; wait a few minutes", retry_after=900)
    if result.user is None:
        raise Problem(401, "wrong email or password")
    response = JSONResponse({"user": {"id": result.user.id, "name": result.user.name}, "csrf_token": csrf})
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        max_age=int(auth.SESSION_LIFETIME.total_seconds()), path="/")
    return response


async def logout(request: Request) -> Response:
    authenticate(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        with request.app.state.runtime.db.begin() as conn:
            auth.end_session(conn, secret)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def tokens(request: Request) -> Response:
    """POST: a new API token for the caller (shown once). Body: {"name": ..., "expires_in_days": 30}."""
    actor = authenticate(request)
    data = await read_object(request)
    name = data.get("name")
    days = data.get("expires_in_days")
    if not isinstance(name, str) or not name.strip():
        raise Problem(400, "give the token a name")
    if len(name) > MAX_TOKEN_NAME or "\x00" in name:
        raise Problem(400, f"the token name must be text of at most {MAX_TOKEN_NAME} characters, without NUL")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650):
        raise Problem(400, "expires_in_days must be a whole number of days from 1 to 3650")
    now = auth.utcnow()
    with request.app.state.runtime.db.begin() as conn:
        secret = auth.create_token(conn, actor.user_id, name.strip(), now,
                                   timedelta(days=days) if days else None)
        audit.record(conn, "token_created", now, user_id=actor.user_id, detail={"name": name})
    return JSONResponse({"token": secret, "name": name}, status_code=201)


async def revoke(request: Request) -> Response:
    actor = authenticate(request)
    now = auth.utcnow()
    import sqlalchemy as sa

    token_id = canonical_id(request.path_params["id"])
    with request.app.state.runtime.db.begin() as conn:
        owner = conn.execute(sa.select(auth.tokens.c.user_id).where(
            auth.tokens.c.id == token_id)).scalar() if token_id else None
        if owner is None or (owner != actor.user_id and "admin" not in actor.roles):
            raise Problem(404, "no such token")
        auth.revoke_token(conn, token_id, now)
        audit.record(conn, "token_revoked", now, user_id=actor.user_id, detail={"token": token_id})
    return Response(status_code=204)
