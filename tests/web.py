"""Helpers for web UI tests through Starlette's TestClient: users with passwords, signing in
through the real sign-in form (with its CSRF cookie), and reading a page's CSRF token."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.security import auth
from metacrm.engine.ui.site import create_site

PASSWORD = "correct horse battery"


def site_client(runtime) -> TestClient:
    return TestClient(create_site(runtime), follow_redirects=False)


def make_user(runtime, name: str, email: str, roles: list[str], language: str = "en") -> str:
    with runtime.db.begin() as conn:
        user = identity.create_user(conn, name, email, roles=roles, language=language)
        auth.set_password(conn, user.id, PASSWORD)
    return user.id


def login_token(client: TestClient) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, next_path: str = "/app"):
    token = login_token(client)
    return client.post(f"/login?next={next_path}", data={"csrf_token": token, "email": email, "password": password})


def csrf_of(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
