"""The import wizard in a real Chromium against `metacrm serve` (crm_standard, SQLite and
PostgreSQL): an admin uploads a contacts CSV with Chinese headers, sees them auto-mapped, runs the
dry run (a row without the required last name is reported, nothing is written), imports, and the
valid rows are there; values with markup stay text. No JavaScript error or CSP violation."""

from __future__ import annotations

from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.query import Query
from metacrm.engine.records.service import RecordService
from tests.browser import browser, live_app, pages, screenshots  # noqa: F401 (fixtures)

CSV = ("姓,名,电子邮箱,Lead Source\n"
       "Importer,Ida,ida@example.com,web\n"
       ",<img src=x onerror=window.pwned=1>,nobody@example.com,web\n"
       "Importer,Ian,ian@example.com,referral\n")


def sign_in(page, app) -> None:
    login = app.users["admin"]
    page.goto("/login")
    page.fill("#email", login.email)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/app")


def importers(app) -> list[str]:
    found = RecordService(app.runtime).list("contact", Query(filter=[["last_name", "eq", "Importer"]], limit=10),
                                            actor=SYSTEM).records
    return sorted(r["first_name"] for r in found)


def test_upload_map_dry_run_and_import(pages, live_app, screenshots, tmp_path):
    from playwright.sync_api import expect  # here: the fixtures skip (or fail in CI) without Playwright

    file = tmp_path / "contacts.csv"
    file.write_text(CSV, encoding="utf-8")
    page = pages.open()
    sign_in(page, live_app)
    page.goto("/app/o/contact")
    page.click("a:has-text('Import')")
    page.set_input_files("#import-file", str(file))
    page.click("button:has-text('Upload')")
    expect(page.locator("#map-0")).to_have_value("last_name")
    expect(page.locator("#map-2")).to_have_value("email")
    expect(page.locator("#map-3")).to_have_value("lead_source")
    page.click("button:has-text('Check')")
    expect(page.locator("h2")).to_contain_text("nothing was written")
    expect(page.locator("table.import-errors tbody tr")).to_have_count(1)
    expect(page.locator("table.import-errors")).to_contain_text("<img src=x onerror=window.pwned=1>")
    page.screenshot(path=str(screenshots / "import-dry-run.png"), full_page=True)
    assert importers(live_app) == []
    page.click("button:has-text('Import')")
    expect(page.locator(".notice")).to_contain_text("2 record(s) created")
    assert importers(live_app) == ["Ian", "Ida"]
    with page.expect_download() as download:
        page.click("button:has-text('Download failed rows')")
    assert "nobody@example.com" in download.value.path().read_text("utf-8")
    assert page.evaluate("window.pwned") is None
