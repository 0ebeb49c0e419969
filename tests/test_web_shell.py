"""The web UI's shell on both databases: signing in and out, the pages a user may open, the
list page of an object as that user may see it, escaping, security headers and the language
switch. Through the real site app (API + UI) with Starlette's TestClient."""

from __future__ import annotations

import re

from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.web.assets import static_url
from tests.conftest import install
from tests.web import csrf_of, make_user, sign_in, site_client

DEAL = """
name: deal
label: {en: Deal, zh-CN: 交易, zh-TW: 交易}
plural_label: {en: Deals, zh-CN: 交易, zh-TW: 交易}
title_field: title
fields:
  - {name: title, type: text, required: true, label: {en: Title, zh-CN: 标题, zh-TW: 標題}}
  - name: stage
    type: picklist
    label: {en: Stage, zh-CN: 阶段, zh-TW: 階段}
    options:
      - {value: new, label: {en: New deal, zh-CN: 新交易, zh-TW: 新交易}}
      - {value: won, label: {en: Won, zh-CN: 赢单, zh-TW: 贏單}}
  - {name: amount, type: decimal, precision: 12, scale: 2, label: {en: Amount, zh-CN: 金额, zh-TW: 金額}}
  - {name: margin, type: decimal, precision: 12, scale: 2, label: {en: Secret margin}}
layouts:
  list_views:
    - name: all
      label: {en: All deals, zh-CN: 全部交易, zh-TW: 全部交易}
      columns: [title, stage, amount, margin, owner]
      sort: [-amount]
permissions:
  rep: {create: true, read: all, edit: own, fields: {margin: hidden}}
"""
SECRET = """
name: secret_thing
label: {en: Secret thing}
fields:
  - {name: name, type: text}
permissions:
  boss: {read: all}
"""


def setup(runtime, records):
    install(runtime, DEAL, SECRET)
    make_user(runtime, "Rita Rep", "rita@example.com", ["rep"])
    records.create("deal", {"title": "<script>alert(1)</script>", "stage": "new", "amount": "12345.5",
                            "margin": "777.77"}, actor=SYSTEM)


def test_pages_need_a_signed_in_user_and_come_back_after_sign_in(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    went = client.get("/app/o/deal")
    assert went.status_code == 303 and went.headers["location"] == "/login?next=%2Fapp%2Fo%2Fdeal"
    signed = sign_in(client, "rita@example.com", next_path="/app/o/deal")
    assert signed.status_code == 303 and signed.headers["location"] == "/app/o/deal"
    assert client.get("/app/o/deal").status_code == 200


def test_sign_in_refuses_a_wrong_password_and_a_form_without_its_token(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    wrong = sign_in(client, "rita@example.com", password="not the password")
    assert wrong.status_code == 401 and "Wrong e-mail or password." in wrong.text
    forged = client.post("/login", data={"email": "rita@example.com", "password": "correct horse battery"})
    assert forged.status_code == 403 and "metacrm_session" not in forged.cookies
    assert sign_in(client, "rita@example.com", next_path="//evil.example/").headers["location"] == "/app"


def test_the_list_page_shows_labels_and_formatted_values_and_nothing_hidden(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    sign_in(client, "rita@example.com")
    html = client.get("/app/o/deal").text
    assert "All deals" in html and "New deal" in html and "12,345.50" in html and 'class="type-user"></td>' in html
    assert "Secret margin" not in html and "777.77" not in html and "margin" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_every_page_forbids_inline_script(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    pages = [client.get("/login")]
    sign_in(client, "rita@example.com")
    pages += [client.get("/app"), client.get("/app/o/deal"), client.get("/app/o/nothing")]
    for response in pages:
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    html = pages[1].text
    assert "<script>" not in html and re.findall(r"<script[^>]*>", html) == [
        f'<script src="{static_url(name)}" defer>' for name in ("vendor/htmx.org/dist/htmx.min.js", "app.js")]


def test_objects_the_user_may_not_read_are_not_in_the_navigation_and_are_a_404_page(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    sign_in(client, "rita@example.com")
    home = client.get("/app").text
    assert 'href="/app/o/deal"' in home and "secret_thing" not in home and "Secret thing" not in home
    for path in ("/app/o/secret_thing", "/app/o/no_such_object"):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "Traceback" not in missing.text


def test_the_language_switch_needs_the_csrf_token_and_is_remembered(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    sign_in(client, "rita@example.com")
    page = client.get("/app/o/deal")
    refused = client.post("/app/language", data={"language": "zh-CN", "next": "/app/o/deal"})
    assert refused.status_code == 403
    switched = client.post("/app/language", data={"language": "zh-CN", "next": "/app/o/deal",
                                                  "csrf_token": csrf_of(page.text)})
    assert switched.status_code == 303
    assert "全部交易" in client.get("/app/o/deal").text
    other = site_client(runtime)  # a new browser: the language comes from the user, not the cookie
    sign_in(other, "rita@example.com")
    html = other.get("/app/o/deal").text
    assert "全部交易" in html and "新交易" in html and 'lang="zh-CN"' in html


def test_sign_out_ends_the_session_on_the_server(runtime, records):
    setup(runtime, records)
    client = site_client(runtime)
    sign_in(client, "rita@example.com")
    session = client.cookies.get("metacrm_session")
    page = client.get("/app")
    assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    replay = site_client(runtime)
    replay.cookies.set("metacrm_session", session)
    assert replay.get("/app").status_code == 303  # the old cookie no longer signs anyone in
