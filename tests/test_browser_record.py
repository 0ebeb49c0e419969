"""In a real Chromium against `metacrm serve` (both databases): a sales rep opens an opportunity
from the list, edits it, gets the validation error next to the amount, fixes it, saves, and sees
the change in the record's timeline — at desktop width and at 390 px. Screenshots of the form
with the error and of the record page, in English and Simplified Chinese."""

from __future__ import annotations

import pytest

from metacrm.engine import identity
from metacrm.engine.security import auth
from tests.browser import DESKTOP, PHONE, browser, live_app, pages, screenshots  # noqa: F401  (fixtures)

REP_PASSWORD = "rob-password-1"


@pytest.fixture(scope="module")
def rep(live_app):  # noqa: F811
    with live_app.runtime.db.begin() as conn:
        user = identity.create_user(conn, "Rob Rep", "rob@example.com", groups_=["sales"])
        auth.set_password(conn, user.id, REP_PASSWORD)
    return user


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/app")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_rep_fixes_a_validation_error_and_sees_the_change_in_the_timeline(pages, live_app, rep, screenshots, size):  # noqa: F811
    width, height = size
    page = pages.open(width, height)
    sign_in(page, "rob@example.com", REP_PASSWORD)
    page.goto("/app/o/opportunity")
    page.locator("table.records tbody tr td a").first.click()
    page.wait_for_selector(".record-head h1")
    title = page.locator(".record-head h1").inner_text()
    page.click("text=Edit")
    page.wait_for_selector("form.record-form")
    page.fill("#f-amount", "-100")
    page.click("form.record-form button[type=submit]")
    error = page.locator('.field[data-field="amount"] .field-error')
    error.wait_for()
    assert "at least 0" in error.inner_text()
    assert page.locator("#f-amount").input_value() == "-100"
    page.screenshot(path=str(screenshots / f"form-error-en-{width}.png"), full_page=True)
    page.fill("#f-amount", "43210")
    page.click("form.record-form button[type=submit]")
    page.wait_for_selector(".timeline")
    assert page.locator(".record-head h1").inner_text() == title
    change = page.locator(".timeline .tl-change").first
    assert "Rob Rep changed" in change.inner_text() and "43,210.00" in change.inner_text()
    page.screenshot(path=str(screenshots / f"record-en-{width}.png"), full_page=True)
    page.select_option("#language", "zh-CN")
    page.wait_for_selector("html[lang=zh-CN]")
    assert "修改了" in page.locator(".timeline .tl-change").first.inner_text()
    page.screenshot(path=str(screenshots / f"record-zh-CN-{width}.png"), full_page=True)
    page.click(".record-actions a.button.primary")
    page.wait_for_selector("form.record-form")
    page.fill("#f-amount", "-1")
    page.click("form.record-form button[type=submit]")
    page.locator('.field[data-field="amount"] .field-error').wait_for()
    page.screenshot(path=str(screenshots / f"form-error-zh-CN-{width}.png"), full_page=True)
    assert page.locator("#f-loss_reason").count() == 0  # visible_if: only for a lost deal
    page.select_option("#f-stage", "closed_lost")  # the server re-evaluates the form (htmx)
    page.locator("#f-loss_reason").wait_for()
    assert page.locator("#f-amount").input_value() == "-1"  # the swap keeps what was typed
    page.select_option("#language", "en")  # the user's language is remembered: leave it as it was
    page.wait_for_selector("html[lang=en]")
    page.click("text=Cancel")
    page.click('.field-view:has(dt:text-is("Account")) a')  # a lookup opens the account's 360° page
    page.wait_for_selector("section.related")
    assert page.locator("section.related h2").count() >= 4  # contacts, opportunities, tickets, activities...
    assert page.locator(".record-kind").inner_text().lower() == "account"
    page.screenshot(path=str(screenshots / f"account-en-{width}.png"), full_page=True)
