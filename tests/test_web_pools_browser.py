"""The public pool page in a real Chromium against `metacrm serve` (crm_standard: accounts, the
"public" pool for the sales group, holding limit 50), desktop and phone width: a rep claims an
account from the pool until the limit refuses with the reason, and returns one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.automation import pools
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.service import RecordService
from tests.browser import DESKTOP, PHONE, browser, live_app, pages, screenshots  # noqa: F401 (fixtures)


def sign_in(page, app) -> None:
    login = app.users["admin"]
    page.goto("/login")
    page.fill("#email", login.email)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/app")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_claim_from_the_pool_until_the_limit_refuses(pages, live_app, screenshots, size):
    from playwright.sync_api import expect  # here: the fixtures skip (or fail in CI) without Playwright

    service = RecordService(live_app.runtime)
    limit = live_app.runtime.model.find("account", "pools", "public").holding_limit
    with live_app.runtime.db.read() as conn:
        ada = conn.execute(sa.select(identity.users.c.id).where(
            identity.users.c.email == live_app.users["admin"].email)).scalar_one()
    ada_actor = Actor(user_id=ada)
    pooled = []
    for i in range(limit + 1):  # limit - 1 claimed beforehand; the page claims one more, then is refused
        made = service.create("account", {"name": f"Pool {size[0]} #{i:02d}"}, actor=SYSTEM)
        with live_app.runtime.db.begin() as conn:
            pools.put(service, conn, "account", made["id"], "public", SYSTEM)
        pooled.append(made["id"])
    for record_id in pooled[:limit - 1]:
        pools.claim(service, "account", record_id, ada_actor)

    page = pages.open(*size)
    sign_in(page, live_app)
    page.goto("/app/pools")
    expect(page.locator("h1")).to_have_text("Public pools")
    page.locator(f"li:has-text('Pool {size[0]} #{limit - 1:02d}') button").click()
    expect(page.locator(".notice")).to_contain_text("Claimed")
    page.locator(f"li:has-text('Pool {size[0]} #{limit:02d}') button").click()
    expect(page.locator(".alert")).to_contain_text(f"most records this pool allows ({limit})")
    assert service.get("account", pooled[limit], actor=SYSTEM)["owner"] is None
    page.screenshot(path=str(screenshots / f"pools-refused-{size[0]}.png"), full_page=False)
    page.locator(f"li:has-text('Pool {size[0]} #{limit - 1:02d}') button", has_text="Return").click()
    expect(page.locator(".notice")).to_contain_text("Returned")
    assert service.get("account", pooled[limit - 1], actor=SYSTEM)["owner"] is None
    for record_id in pooled[:limit - 1]:  # give the others back: the other width starts from the same limit
        pools.return_(service, "account", record_id, "public", ada_actor)
