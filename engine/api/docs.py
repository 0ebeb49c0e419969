"""GET /api/v1/docs: the interactive API documentation (Swagger UI, vendored; see engine/web).

The page shows the caller's own OpenAPI document (/api/v1/openapi.json, built for whoever is
signed in) with "try it out". Without a session or token that document is refused (401), so
the page carries the public part — how to sign in and get a token — and a sign-in form; after
signing in (or pasting an API token) it loads the caller's document. A browser session's
unsafe requests need the X-CSRF-Token header: for a session that already exists the page is
rendered with its token (same origin only can read it), and a sign-in through the page
returns it; the page's script adds it to every "try it out" request.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.engine import identity
from metacrm.engine.api.context import CSRF_HEADER, SESSION_COOKIE
from metacrm.engine.security import auth
from metacrm.engine.web.templating import render

SWAGGER = "vendor/swagger-ui-dist/"
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": PROBLEM_CONTENT}


def public_spec() -> dict[str, Any]:
    """What anyone may read before signing in: how to sign in and where the full document is."""
    user = {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "metacrm API", "version": "1.0.0",
                 "description": "Sign in (the form above, or POST /api/v1/auth/login) or give an API token to see "
                                "every operation you may use, generated from the live metadata for you."},
        "paths": {
            "/api/v1/auth/login": {"post": {
                "summary": "Sign in: a session cookie and the CSRF token for unsafe requests",
                "operationId": "login", "tags": ["auth"], "security": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["email", "password"],
                    "properties": {"email": {"type": "string", "format": "email"},
                                   "password": {"type": "string", "format": "password"}}}}}},
                "responses": {
                    "200": {"description": "Signed in; Set-Cookie carries the session",
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {"user": user, "csrf_token": {"type": "string"}}}}}},
                    "400": _problem("email or password missing or malformed"),
                    "401": _problem("wrong email or password"),
                    "429": _problem("too many failed sign-ins; see Retry-After")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "The OpenAPI document for the caller", "operationId": "openapi", "tags": ["meta"],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                              "401": _problem("not signed in")}}},
        },
        "components": {
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}}}},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}},
        },
        "security": [{"token": []}, {"session": []}],
    }


def _signed_in(request: Request) -> tuple[str, str] | None:
    """(user name, CSRF token) of the browser's live session, or None."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    with request.app.state.runtime.db.read() as conn:
        session = auth.session_for(conn, secret, auth.utcnow())
        user = identity.get_user(conn, session.user_id) if session is not None else None
    if user is None or not user.active:
        return None
    return user.name, session.csrf


def page(request: Request) -> Response:
    signed_in = _signed_in(request)
    context = {
        "swagger_js": SWAGGER + "swagger-ui-bundle.js", "swagger_css": SWAGGER + "swagger-ui.css",
        "spec_url": "/api/v1/openapi.json", "login_url": "/api/v1/auth/login", "logout_url": "/api/v1/auth/logout",
        "csrf_header": CSRF_HEADER, "user_name": signed_in[0] if signed_in else None,
        "csrf_token": signed_in[1] if signed_in else None, "public_spec": public_spec(),
    }
    # the page may carry a session's CSRF token: never cached, by the browser or in between
    return render("api_docs.html", context, headers={"Cache-Control": "no-store"})
