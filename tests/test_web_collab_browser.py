"""Comments, follow and "log a call" on an account's record page in a real Chromium against
`metacrm serve` (crm_standard with sample data, SQLite and PostgreSQL), at desktop and phone
width, with no JavaScript error or CSP violation: a comment with markup is shown as text, the
follow button toggles, one click logs a call that appears in the timeline."""

from __future__ import annotations

from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.query import Query
from metacrm.engine.records.service import RecordService
from tests.browser import DESKTOP, PHONE, browser, live_app, pages, screenshots  # noqa: F401 (fixtures)
from tests.test_web_lists_browser import sign_in


def test_comment_follow_and_log_a_call_on_an_account(live_app, pages, screenshots):
    account = RecordService(live_app.runtime).list("account", Query(limit=1), actor=SYSTEM).records[0]
    for width, height in (DESKTOP, PHONE):
        page = pages.open(width, height)
        sign_in(page, live_app)
        page.goto(f"/app/o/account/{account['id']}")
        page.fill("#comment-body", f"Spoke to them <b>today</b> ({width})")
        page.click(".comment-form button[type=submit]")
        page.wait_for_url(f"**/app/o/account/{account['id']}#activity")
        assert page.locator(".tl-comment .tl-text", has_text=f"<b>today</b> ({width})").count() == 1
        follow = page.locator("button[name=action]", has_text="Follow")
        follow.first.click()
        assert page.locator("button[name=action][value=unfollow]").count() == 1
        page.click("text=Log a call")
        page.wait_for_url(f"**/app/o/account/{account['id']}#activity")
        assert page.locator(".tl-activity").count() >= 1
        page.screenshot(path=str(screenshots / f"collab_{live_app.database}_{width}.png"), full_page=True)
        page.locator("button[name=action][value=unfollow]").click()
        assert page.locator("button[name=action][value=follow]").count() == 1
