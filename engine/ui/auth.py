"""Signing in and out of the web UI, and the signed-in unit every page works in.

The session is the API's (engine.security.auth sessions, the same cookie), so a browser signed in
here can also use the interactive API docs. Unsafe requests carry the session's CSRF token, as a
form field (`csrf_token`) or the X-CSRF-Token header that htmx sends; sign-in itself is guarded by
a double-submit cookie, since there is no session yet.
"""

from __future__ import annotations

import hmac
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from sqlalchemy.engine import Connection

from metacrm.engine.api.bodies import awaited
from metacrm.engine.api.context import SESSION_COOKIE, cache_key, gate, request_unit
from metacrm.engine.api.problems import Problem
from metacrm.engine.identity import audit
from metacrm.engine import identity
from metacrm.engine.identity.actor import Actor
from metacrm.engine.security import auth
from metacrm.engine.ui import strings
from metacrm.engine.ui.render import page

LOGIN_CSRF_COOKIE = "metacrm_login_csrf"
LANGUAGE_COOKIE = "metacrm_lang"
MAX_FORM_BYTES = 64 * 1024


class SignInRequired(Exception):
    """The page needs a signed-in user; the site answers with a redirect to /login."""


class FormExpired(Exception):
    """An unsafe request without the session's CSRF token (a stale page, or another site's form)."""


@dataclass
class WebUnit:
    """A page's signed-in user (as the actor of every read and write), its connection, its CSRF token."""

    actor: Actor
    conn: Connection
    csrf: str
    request: Request

    @property
    def language(self) -> str:
        return self.actor.language


def language_of(request: Request, stored: str | None) -> str:
    """The cookie set by the language switch, else the user's stored language, else the browser's."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in strings.LANGUAGES:
        return chosen
    if stored:
        return strings.pick_language(stored)
    return strings.pick_language(request.headers.get("accept-language", "").split(",")[0].split(";")[0])


@contextmanager
def signed_in(request: Request, form: dict[str, str] | None = None) -> Iterator[WebUnit]:
    """The unit of one page request: one connection, the user as actor (channel "ui")."""
    if form is not None:
        request.state.form_csrf = form.get("csrf_token", "")
    try:
        with request_unit(request) as unit:
            caller = request.state.caller
            actor = replace(unit.actor, channel="ui", language=language_of(request, caller.language))
            yield WebUnit(actor, unit.conn, caller.csrf or "", request)
    except Problem as problem:
        if problem.status == 401:
            raise SignInRequired() from None
        if problem.status == 403 and "CSRF" in str(problem.detail):
            raise FormExpired() from None
        raise


def read_form(request: Request) -> dict[str, str]:
    """The form of a POST as text fields (from a handler in the thread pool); too large is a 413."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise Problem(413, "the form is too large")

    async def read() -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=1000)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    return awaited(read)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: only a path on this site (never //host or a scheme)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/app"


def login_page(request: Request) -> Response:
    language = language_of(request, None)
    if request.method == "GET":
        return _login_form(request, language, error=None)
    form = read_form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf_token", "").encode()):
        return _login_form(request, language, strings.text(language, "csrf_failed"), status=403)
    email, password = form.get("email", "")[:320], form.get("password", "")
    if "\x00" in email or "\x00" in password:
        return _login_form(request, language, strings.text(language, "wrong_credentials"), status=400)
    result = auth.sign_in(request.app.state.runtime.db, email, password,
                          request.client.host if request.client else None, auth.utcnow())
    if result.throttled:
        message = strings.text(language, "too_many_sign_ins", seconds=result.retry_after)
        return _login_form(request, language, message, status=429, email=email)
    if result.user is None or result.session is None:
        return _login_form(request, language, strings.text(language, "wrong_credentials"), status=401, email=email)
    secret, _csrf = result.session
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        max_age=int(auth.SESSION_LIFETIME.total_seconds()), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def _login_form(request: Request, language: str, error: str | None, status: int = 200, email: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", {"error": error, "email": email, "login_csrf": token,
                                             "next": safe_next(request.query_params.get("next"))},
                    status=status, language=language)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.url.scheme == "https")
    return response


def logout_page(request: Request) -> Response:
    form = read_form(request)
    with signed_in(request, form):
        pass  # a valid session and CSRF token: only the user can sign themselves out
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        with request.app.state.runtime.db.begin() as conn:
            auth.end_session(conn, secret)
        gate(request).forget(cache_key("session", secret))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def language_switch(request: Request) -> Response:
    """POST /app/language: show the UI in the chosen language from now on, and remember it for the user."""
    form = read_form(request)
    chosen = form.get("language", "")
    if chosen not in strings.LANGUAGES:
        raise Problem(400, "unknown language")
    with signed_in(request, form) as unit:
        user_id = unit.actor.user_id
    with request.app.state.runtime.db.begin() as conn:
        identity.set_language(conn, user_id, chosen)
        audit.record(conn, "language_changed", auth.utcnow(), user_id=user_id, detail={"language": chosen})
    gate(request).forget()  # the cached caller holds the old language
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, chosen, httponly=True, samesite="lax", path="/",
                        max_age=365 * 24 * 3600, secure=request.url.scheme == "https")
    return response


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
