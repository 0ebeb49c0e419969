"""The interactive API docs page (/api/v1/docs) in a real headless Chromium, on SQLite and on
PostgreSQL, against `metacrm serve`: it shows the public part and a sign-in without a
session, signs in, and "try it out" lists and creates accounts with the session (the CSRF
header sent by the page) or with an API token. Also the static files it loads: versioned,
cached, compressed, never served from outside the static folder."""

from __future__ import annotations

import json
import uuid

import httpx2

from tests.browser import DESKTOP, PHONE, LiveApp, browser, live_app, pages, screenshots  # noqa: F401 (fixtures)

DOCS = "/api/v1/docs"
ACCOUNTS = "/api/v1/records/account"
#: JS + CSS of the docs page, compressed: above the 200 KB of application pages because Swagger UI
#: needs it (docs/api.md, "Size"); measured 488 KB with swagger-ui-dist 5.35.0.
DOCS_PAGE_BUDGET = 500_000


def operation(page, method: str, path: str):
    """One operation block of Swagger UI."""
    return page.locator(f".opblock-{method}").filter(
        has=page.locator(f".opblock-summary-path[data-path='{path}']"))


def try_it(page, method: str, path: str, body: dict | None = None) -> tuple[str, str]:
    """Open an operation, "Try it out", optionally fill the JSON body, "Execute": (status, response body)."""
    block = operation(page, method, path)
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    if body is not None:
        block.locator("textarea.body-param__text").fill(json.dumps(body))
    block.locator("button.execute").click()
    row = block.locator(".live-responses-table tbody tr.response")
    status = row.locator(".response-col_status").inner_text().strip()
    return status, row.locator(".response-col_description pre").first.inner_text()


def sign_in(page, app: LiveApp, who: str = "admin") -> None:
    login = app.users[who]
    page.fill("#docs-signin input[name=email]", login.email)
    page.fill("#docs-signin input[name=password]", login.password)
    page.click("#docs-signin button[type=submit]")
    page.get_by_text(f"Signed in as {login.name}.").wait_for()


def account_names(app: LiveApp) -> list[str]:
    with app.api() as client:
        listed = client.get(ACCOUNTS)
    assert listed.status_code == 200, listed.text
    return [record["name"] for record in listed.json()["records"]]


def test_without_a_session_the_page_shows_the_sign_in_and_the_public_part(pages, live_app, screenshots):
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page = pages.open(*size)
        page.goto(DOCS)
        operation(page, "post", "/api/v1/auth/login").wait_for()
        assert page.locator("#docs-signin").is_visible() and page.locator("#docs-token").is_visible()
        assert page.get_by_text("You see the public part of the API").is_visible()
        assert operation(page, "get", ACCOUNTS).count() == 0  # the records are not described to a stranger
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]  # no sideways scrolling
        page.screenshot(path=str(screenshots / f"docs-public-{label}-{live_app.database}.png"))


def test_a_user_signs_in_and_lists_and_creates_accounts_with_try_it_out(pages, live_app, screenshots):
    page = pages.open(*DESKTOP)
    page.goto(DOCS)
    sign_in(page, live_app)
    status, body = try_it(page, "get", ACCOUNTS)
    assert status == "200"
    expected = account_names(live_app)
    assert expected and all(json.dumps(name, ensure_ascii=False)[1:-1] in body for name in expected[:3]), body
    page.screenshot(path=str(screenshots / f"docs-signed-in-{live_app.database}.png"))

    # the session outlives a reload: the page is rendered with its CSRF token, which a POST needs
    page.reload()
    page.get_by_text(f"Signed in as {live_app.users['admin'].name}.").wait_for()
    name = f"Made on the docs page {uuid.uuid4().hex[:6]}"
    status, body = try_it(page, "post", ACCOUNTS, {"name": name})
    assert status == "201", body
    with live_app.api() as client:
        found = client.get(ACCOUNTS, params={"name": name}).json()["records"]
    assert [record["name"] for record in found] == [name]

    page.click("#docs-signout")
    page.get_by_text("Not signed in.").wait_for()
    assert page.context.request.get(ACCOUNTS).status == 401  # signed out on the server, not only on the page


def test_with_an_api_token_instead_of_a_session(pages, live_app, screenshots):
    page = pages.open(*PHONE)
    page.goto(DOCS)
    page.fill("#docs-token input[name=token]", "mcrm_not-a-token")
    page.click("#docs-token button[type=submit]")
    page.get_by_text("The token was not accepted").wait_for()
    assert page.locator("#docs-signin").is_visible()  # still usable: the public part and the sign-in

    page.fill("#docs-token input[name=token]", live_app.users["admin"].token)
    page.click("#docs-token button[type=submit]")
    page.get_by_text("Using an API token.").wait_for()
    assert page.context.cookies() == []  # no session: the token alone authorises
    status, body = try_it(page, "get", ACCOUNTS)
    assert status == "200"
    assert json.dumps(account_names(live_app)[0], ensure_ascii=False)[1:-1] in body
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]  # no sideways scrolling at 390 px
    page.screenshot(path=str(screenshots / f"docs-token-phone-{live_app.database}.png"), full_page=False)


def test_static_files_are_versioned_cached_and_compressed(live_app):
    with httpx2.Client(base_url=live_app.url, timeout=15.0) as client:
        html = client.get(DOCS)
        policy = html.headers["content-security-policy"]
        assert html.status_code == 200 and "script-src 'self';" in policy and "unsafe" not in policy
        assert html.headers["cache-control"] == "no-store"
        linked = [part.split('"')[0] for part in html.text.split('src="')[1:] + html.text.split('href="')[1:]
                  if part.startswith("/static/")]
        assert any("swagger-ui-bundle.js?v=" in url for url in linked), linked
        sent = 0
        for url in linked:
            got = client.get(url, headers={"Accept-Encoding": "gzip"})
            assert got.status_code == 200, url
            assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert got.headers["content-encoding"] == "gzip"
            sent += int(got.headers["content-length"])
        assert sent <= DOCS_PAGE_BUDGET, f"the docs page sends {sent} bytes of JS and CSS, compressed"
        plain = client.get(linked[0].split("?")[0], headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in plain.headers
        revalidated = client.get(linked[0].split("?")[0], headers={"If-None-Match": plain.headers["etag"]})
        assert revalidated.status_code == 304
        assert client.get("/static/vendor/swagger-ui-dist/LICENSE").status_code == 200
        for outside in ("/static/../../api/app.py", "/static/%2e%2e/templates/api_docs.html", "/static/vendor/"):
            assert client.get(outside).status_code == 404, outside


def test_a_name_that_is_markup_is_shown_as_text(pages, live_app):
    page = pages.open(*DESKTOP)
    page.goto(DOCS)
    sign_in(page, live_app, "markup")  # waits for the text "Signed in as <img …>Eve."
    page.reload()  # now rendered by the server into the page
    page.get_by_text(f"Signed in as {live_app.users['markup'].name}.").wait_for()
    assert page.locator(".docs-bar img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_session_ended_elsewhere_is_said_and_the_sign_in_comes_back(pages, live_app):
    page = pages.open(*DESKTOP)
    page.goto(DOCS)
    sign_in(page, live_app)
    page.reload()
    csrf = page.get_attribute("#docs", "data-csrf-token")
    ended = page.context.request.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert ended.status == 204  # as if signed out in another tab
    status, _ = try_it(page, "get", ACCOUNTS)
    assert status == "401"
    page.get_by_text("Your session has ended: sign in again.").wait_for()
    assert page.locator("#docs-signin").is_visible()
