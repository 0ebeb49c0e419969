"""The list, filter bar and kanban in a real Chromium against `metacrm serve` (crm_standard with
its sample data, SQLite and PostgreSQL), at desktop and phone width: a rep filters the open
opportunities by stage and amount, then drags a deal across the kanban — a legal move is saved,
an illegal one snaps back with the reason. The expected rows come from the database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.query import Query
from metacrm.engine.records.service import RecordService
from tests.browser import DESKTOP, PHONE, browser, live_app, pages, screenshots  # noqa: F401 (fixtures)

OPEN_VIEW = "/app/o/opportunity?view=open_opportunities"


def sign_in(page, app) -> None:
    login = app.users["admin"]
    page.goto("/login")
    page.fill("#email", login.email)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/app")


def expected_open(app, stage: str, minimum: Decimal | None) -> list[str]:
    amount = [["amount", "ge", str(minimum)]] if minimum is not None else []
    found = RecordService(app.runtime).list("opportunity", Query(
        filter=[["stage", "eq", stage], *amount], sort=("-amount",), limit=100), actor=SYSTEM).records
    return [r["name"] for r in found]


def drag(page, card, lane) -> None:
    """Drag with the mouse, in small steps (SortableJS in fallback mode follows mouse events)."""
    card.scroll_into_view_if_needed()
    start = card.locator(".kcard-line").first.bounding_box()  # not the title link: links and selects do not drag
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    lane.scroll_into_view_if_needed()
    end = lane.bounding_box()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 20, steps=25)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 24, steps=5)
    page.mouse.up()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_filter_open_opportunities_and_move_cards_on_the_kanban(pages, live_app, screenshots, size):
    from playwright.sync_api import expect  # here: the fixtures skip (or fail in CI) without Playwright

    service = RecordService(live_app.runtime)
    account = service.list("account", Query(limit=1), actor=SYSTEM).records[0]["id"]
    name = f"Drag me {size[0]}"
    created = service.create("opportunity", {"name": name, "account": account, "stage": "prospecting",
                                              "amount": "12345"}, actor=SYSTEM)
    page = pages.open(*size)
    sign_in(page, live_app)

    page.goto(OPEN_VIEW)
    page.click("details[data-filter=stage] summary")
    with page.expect_response(lambda r: "f.stage=proposal" in r.url):
        page.check("details[data-filter=stage] input[value=proposal]")
    page.click("details[data-filter=amount] summary")
    page.fill("input[name='f.amount.min']", "400000")
    with page.expect_response(lambda r: "f.amount.min=400000" in r.url):
        page.press("input[name='f.amount.min']", "Enter")
    wanted = expected_open(live_app, "proposal", Decimal(400000))
    assert wanted, "the sample data has open proposals over 400,000"
    page.locator("#records .record-link").first.wait_for()
    assert page.locator("#records .record-link").all_inner_texts() == wanted
    assert "f.stage=proposal" in page.url and "f.amount.min=400000" in page.url  # shareable, back works
    assert "f.name=" not in page.url  # empty inputs stay out of it
    page.go_back()  # the previous filter, from the browser's history
    page.wait_for_url(lambda url: "f.amount.min" not in url)
    expect(page.locator("#records .record-link")).to_have_count(len(expected_open(live_app, "proposal", None)))
    assert page.locator("#records .record-link").all_inner_texts() == expected_open(live_app, "proposal", None)
    page.go_forward()
    page.wait_for_url(lambda url: "f.amount.min" in url)
    expect(page.locator("#records .record-link")).to_have_count(len(wanted))
    page.screenshot(path=str(screenshots / f"list-filtered-{live_app.database}-{size[0]}.png"), full_page=True)

    page.goto("/app/o/opportunity/kanban")
    card = page.locator(f".kcard[data-id='{created['id']}']")
    drag(page, card, page.locator("ol[data-lane=qualification]"))
    page.locator("#board-status:not([hidden])").wait_for()
    page.locator(f"ol[data-lane=qualification] .kcard[data-id='{created['id']}']").wait_for()
    assert service.get("opportunity", created["id"], actor=SYSTEM)["stage"] == "qualification"

    other = service.create("opportunity", {"name": name + " b", "account": account, "stage": "prospecting"},
                           actor=SYSTEM)
    page.reload()
    card = page.locator(f".kcard[data-id='{other['id']}']")
    drag(page, card, page.locator("ol[data-lane=negotiation]"))  # no transition prospecting -> negotiation
    status = page.locator("#board-status.refused")
    status.wait_for()
    assert "Not moved" in status.inner_text()
    page.locator(f"ol[data-lane=prospecting] .kcard[data-id='{other['id']}']").wait_for()  # snapped back
    assert service.get("opportunity", other["id"], actor=SYSTEM)["stage"] == "prospecting"
    page.screenshot(path=str(screenshots / f"kanban-refused-{live_app.database}-{size[0]}.png"))
