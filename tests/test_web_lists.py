"""List views, the filter bar, bulk actions, export, the kanban, the home page and the inbox of
the web UI, on SQLite and PostgreSQL, through the real site app with Starlette's TestClient.
Every expectation is computed from the records the test created, not copied from a run."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from metacrm.engine.automation.tables import notifications
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import QueryError
from metacrm.engine.records.totals import group_totals
from metacrm.engine.security import auth
from tests.conftest import install
from tests.web import csrf_of, make_user, sign_in, site_client

DEAL = """
name: deal
label: {en: Deal, zh-CN: 交易, zh-TW: 交易}
plural_label: {en: Deals, zh-CN: 交易, zh-TW: 交易}
title_field: title
fields:
  - {name: title, type: text, required: true, searchable: true, label: {en: Title}}
  - name: stage
    type: picklist
    required: true
    default: new
    label: {en: Stage, zh-CN: 阶段, zh-TW: 階段}
    options:
      - {value: new, label: {en: New deal}, color: "#1677ff"}
      - {value: proposal, label: {en: Proposal}}
      - {value: won, label: {en: Won}}
      - {value: lost, label: {en: Lost}}
  - {name: amount, type: currency, precision: 12, scale: 2, label: {en: Amount}}
  - {name: margin, type: currency, precision: 12, scale: 2, label: {en: Secret margin}}
  - {name: close_date, type: date, label: {en: Close date}}
  - {name: account, type: lookup, target: firm, label: {en: Firm}}
  - {name: reason, type: text, label: {en: Reason}}
validation_rules:
  - name: lost_needs_reason
    error_when: "stage == 'lost' and is_blank(reason)"
    field: reason
    message: {en: Say why the deal was lost}
state_machines:
  - field: stage
    transitions:
      - {from: new, to: proposal}
      - {from: proposal, to: new}
      - {from: [new, proposal], to: lost}
      - {from: proposal, to: won}
      - {from: [won, lost], to: new, roles: [boss]}
automations:
  - name: bump
    trigger: {on: manual}
    actions:
      - set: {reason: "'bumped'"}
layouts:
  list_views:
    - name: all
      label: {en: All deals}
      columns: [title, stage, amount, margin, close_date, account, owner]
      sort: [-amount]
      page_size: 3
    - name: open
      label: {en: Open deals}
      columns: [title, stage, amount, owner]
      filter: [[stage, not_in, [won, lost]]]
  kanban:
    group_by: stage
    card_fields: [title, amount, margin, close_date, account]
    sum_field: amount
permissions:
  rep: {create: true, read: all, edit: own, delete: own, export: true, fields: {margin: hidden}}
  viewer: {read: all}
  boss: {create: true, read: all, edit: all, delete: all, export: true}
  blind: {read: all, fields: {amount: hidden, margin: hidden}}
"""
FIRM = """
name: firm
label: {en: Firm}
title_field: name
fields:
  - {name: name, type: text, searchable: true}
permissions:
  rep: {read: all}
  viewer: {read: all}
  boss: {read: all}
  blind: {read: all}
"""

DEALS = [  # title, stage, amount, margin, close date, firm
    ("Alpha", "new", "1000.00", "1.00", "2026-01-10", "Acme"),
    ("Bravo", "proposal", "2500.50", "2.00", "2026-02-10", "Globex"),
    ("Charlie", "proposal", "300.25", "3.00", "2026-03-10", "Acme"),
    ("Delta", "won", "9000.00", "4.00", "2026-01-20", "Globex"),
    ("Echo", "new", None, "5.00", None, "Acme"),
    ("<script>alert(1)</script>", "new", "42.00", "6.00", "2026-04-01", "Initech"),
]


@pytest.fixture
def crm(runtime, records):
    install(runtime, FIRM, DEAL)
    rita = make_user(runtime, "Rita Rep", "rita@example.com", ["rep"])
    sam = make_user(runtime, "Sam Rep", "sam@example.com", ["rep"])
    make_user(runtime, "Vic Viewer", "vic@example.com", ["viewer"])
    make_user(runtime, "Bo Boss", "bo@example.com", ["boss"])
    make_user(runtime, "Bea Blind", "bea@example.com", ["blind"])
    firms = {n: records.create("firm", {"name": n}, actor=SYSTEM)["id"] for n in ("Acme", "Globex", "Initech")}
    ids = {}
    for title, stage, amount, margin, close, firm in DEALS:
        ids[title] = records.create("deal", {"title": title, "stage": stage, "amount": amount, "margin": margin,
                                             "close_date": close, "account": firms[firm],
                                             "owner": rita if title != "Delta" else sam}, actor=SYSTEM)["id"]
    return {"rita": rita, "sam": sam, "ids": ids, "firms": firms}


def client_for(runtime, email="rita@example.com"):
    client = site_client(runtime)
    assert sign_in(client, email).status_code == 303
    return client


def titles(html: str) -> list[str]:
    return re.findall(r'class="record-link" href="[^"]+">([^<]*)</a>', html)


def amounts():
    return {t: Decimal(a) for t, _, a, *_ in DEALS if a is not None}


def test_sort_by_a_header_keeps_the_view_and_pages_by_cursor(runtime, crm):
    client = client_for(runtime)
    first = client.get("/app/o/deal?view=all&sort=amount")
    assert first.status_code == 200
    by_amount = sorted(amounts(), key=lambda t: amounts()[t]) + ["Echo"]  # blanks sort last
    assert titles(first.text) == [t.replace("<", "&lt;").replace(">", "&gt;") for t in by_amount[:3]]
    assert 'aria-sort="ascending"' in first.text and "sort=-amount" in first.text  # the header toggles
    following = re.search(r'href="(/app/o/deal\?[^"]*cursor=[^"]+)"', first.text).group(1).replace("&amp;", "&")
    assert "view=all" in following and "sort=amount" in following
    second = client.get(following)
    assert titles(second.text) == by_amount[3:6]
    descending = client.get("/app/o/deal?view=all&sort=-amount")
    assert titles(descending.text)[:2] == ["Echo", "Delta"]  # no amount is the largest


def test_htmx_gets_only_the_records_fragment(runtime, crm):
    client = client_for(runtime)
    part = client.get("/app/o/deal?view=all&q=alpha", headers={"HX-Request": "true", "HX-Target": "records"})
    assert part.status_code == 200 and "<html" not in part.text and titles(part.text) == ["Alpha"]
    assert "content-security-policy" in part.headers


def test_filters_by_choice_number_range_date_lookup_and_owner(runtime, crm):
    client = client_for(runtime)
    stage = client.get("/app/o/deal?view=all&f.stage=proposal&f.stage=won&sort=amount")
    assert titles(stage.text) == ["Charlie", "Bravo", "Delta"]
    ranged = client.get("/app/o/deal?view=all&f.amount.min=500&f.amount.max=3000&sort=amount")
    assert titles(ranged.text) == [t for t in sorted(amounts(), key=lambda t: amounts()[t])
                                   if Decimal(500) <= amounts()[t] <= Decimal(3000)]
    dated = client.get("/app/o/deal?view=all&f.close_date.min=2026-01-15&f.close_date.max=2026-02-28&sort=amount")
    assert titles(dated.text) == ["Bravo", "Delta"]
    firm = client.get("/app/o/deal?view=all&f.account=glob&sort=amount")
    assert titles(firm.text) == ["Bravo", "Delta"]
    mine = client.get("/app/o/deal?view=open&f.owner=me&sort=title")
    assert "Delta" not in mine.text and set(titles(mine.text)) >= {"Alpha", "Bravo"}
    searched = client.get("/app/o/deal?view=all&q=char")
    assert titles(searched.text) == ["Charlie"]


def test_relative_dates_and_a_bad_filter_value_say_what_is_wrong(runtime, crm, records):
    today = Actor().clock.today()
    records.update("deal", crm["ids"]["Echo"], {"close_date": today.isoformat()}, actor=SYSTEM)
    client = client_for(runtime)
    assert titles(client.get("/app/o/deal?view=all&f.close_date.rel=today").text) == ["Echo"]
    assert "Echo" in titles(client.get("/app/o/deal?view=all&f.close_date.rel=this_month").text)
    bad = client.get("/app/o/deal?view=all&f.amount.min=lots")
    assert bad.status_code == 400 and "Amount" in bad.text and "Traceback" not in bad.text
    assert client.get("/app/o/deal?view=all&f.close_date.min=yesterday").status_code == 400
    assert client.get("/app/o/deal?view=nope").status_code == 404


def test_a_hidden_field_is_in_no_column_filter_card_or_sum(runtime, crm):
    client = client_for(runtime)
    for path in ("/app/o/deal?view=all", "/app/o/deal/kanban", "/app/o/deal?view=all&f.margin.min=1"):
        html = client.get(path).text
        assert "margin" not in html and "Secret margin" not in html, path
    assert titles(client.get("/app/o/deal?view=all&f.margin.min=5").text) != []  # the hidden filter is ignored
    assert client.get("/app/o/deal?view=all&sort=margin").status_code == 200  # and the sort
    exported = client.get("/app/o/deal/export?view=all")
    assert "margin" not in exported.text


def test_a_hidden_sum_field_is_not_summed_on_the_kanban_nor_through_the_engine(runtime, crm, records):
    html = client_for(runtime, "bea@example.com").get("/app/o/deal/kanban").text
    assert "data-sum" not in html and "Amount" not in html
    assert not any(f"{Decimal(d[2]):,.2f}" in html for d in DEALS if d[2])
    blind = Actor(user_id="x", roles=frozenset({"blind"}))
    with pytest.raises(QueryError):
        group_totals(records, "deal", "stage", "amount", actor=blind)
    assert group_totals(records, "deal", "stage", None, actor=blind)["proposal"].count == 2


def test_values_are_escaped_in_the_list_and_on_kanban_cards(runtime, crm):
    client = client_for(runtime)
    for path in ("/app/o/deal?view=all&q=script", "/app/o/deal/kanban"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_lookup_columns_show_the_target_title_and_owners_their_names(runtime, crm):
    html = client_for(runtime).get("/app/o/deal?view=all&q=bravo").text
    assert f'href="/app/o/firm/{crm["firms"]["Globex"]}">Globex</a>' in html and "Rita Rep" in html


def test_export_is_the_current_view_and_needs_the_export_right(runtime, crm):
    client = client_for(runtime)
    exported = client.get("/app/o/deal/export?view=all&f.stage=proposal&sort=-amount")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["title"] for r in rows] == ["Bravo", "Charlie"] and "margin" not in rows[0]
    assert list(rows[0]) == ["id", "title", "stage", "amount", "close_date", "account", "owner"]
    viewer = client_for(runtime, "vic@example.com")
    assert viewer.get("/app/o/deal/export?view=all").status_code == 404
    assert "Export CSV" not in viewer.get("/app/o/deal?view=all").text


def bulk(client, data, back="view=all"):
    page = client.get(f"/app/o/deal?{back}")
    return client.post("/app/o/deal/bulk", data={"csrf_token": csrf_of(page.text), "back": back, **data})


def test_bulk_change_owner_within_rights_and_refused_per_record_outside(runtime, crm, records):
    ids = crm["ids"]
    refused = bulk(client_for(runtime), {"action": "owner", "owner": crm["sam"], "ids": [ids["Alpha"], ids["Delta"]]})
    assert refused.status_code == 207 and "0 record(s) done." in refused.text
    assert "<strong>Alpha</strong>: Owner can only be a user" in refused.text  # Rita may not give deals to Sam
    assert "<strong>Delta</strong>: you may not edit" in refused.text  # nor take Sam's
    assert records.get("deal", ids["Alpha"], actor=SYSTEM)["owner"] == crm["rita"]
    done = bulk(client_for(runtime, "bo@example.com"), {"action": "owner", "owner": crm["sam"],
                                                        "ids": [ids["Alpha"], ids["Bravo"]]})
    assert done.status_code == 200 and "2 record(s) done." in done.text
    assert {records.get("deal", ids[t], actor=SYSTEM)["owner"] for t in ("Alpha", "Bravo")} == {crm["sam"]}


def test_bulk_delete_set_field_and_rule(runtime, crm, records):
    client = client_for(runtime)
    ids = crm["ids"]
    deleted = bulk(client, {"action": "delete", "ids": [ids["Echo"], ids["Delta"]]})
    assert deleted.status_code == 207 and "Echo" not in titles(deleted.text)
    assert records.count("deal", [["id", "eq", ids["Echo"]]], actor=SYSTEM) == 0
    assert records.count("deal", [["id", "eq", ids["Delta"]]], actor=SYSTEM) == 1
    refused = bulk(client, {"action": "set", "field": "stage", "value": "Lost", "ids": [ids["Alpha"]]})
    assert refused.status_code == 207 and "Say why the deal was lost" in refused.text
    assert records.get("deal", ids["Alpha"], actor=SYSTEM)["stage"] == "new"
    moved = bulk(client, {"action": "set", "field": "stage", "value": "Proposal", "ids": [ids["Alpha"]]})
    assert moved.status_code == 200 and records.get("deal", ids["Alpha"], actor=SYSTEM)["stage"] == "proposal"
    ran = bulk(client, {"action": "rule", "rule": "bump", "ids": [ids["Bravo"]]})
    assert ran.status_code == 200 and records.get("deal", ids["Bravo"], actor=SYSTEM)["reason"] == "bumped"
    forged = client.post("/app/o/deal/bulk", data={"action": "delete", "ids": [ids["Bravo"]], "back": ""})
    assert forged.status_code == 403 and records.count("deal", [["id", "eq", ids["Bravo"]]], actor=SYSTEM) == 1


def test_kanban_columns_in_option_order_with_counts_and_sums_of_visible_records(runtime, crm):
    html = client_for(runtime).get("/app/o/deal/kanban").text
    lanes = re.findall(r'data-lane="(\w+)" class="cards"|<section class="lane"[^>]*data-lane="(\w+)"', html)
    assert [b for _, b in lanes if b] == ["new", "proposal", "won", "lost"]
    for stage in ("new", "proposal", "won", "lost"):
        group = [d for d in DEALS if d[1] == stage]
        expected = sum((Decimal(d[2]) for d in group if d[2]), Decimal(0))
        section = html.split(f'data-lane="{stage}">', 1)[1].split("</header>", 1)[0]
        assert f"<span class=\"lane-count\" data-count>{len(group)}</span>" in section, stage
        assert f"{expected:,.2f}" in section, stage
    filtered = client_for(runtime).get("/app/o/deal/kanban?f.amount.min=1000").text
    section = filtered.split('data-lane="proposal">', 1)[1].split("</header>", 1)[0]
    assert "<span class=\"lane-count\" data-count>1</span>" in section and "2,500.50" in section


def move(client, record_id, to, version=None):
    page = client.get("/app/o/deal/kanban")
    return client.post("/app/o/deal/kanban/move", data={"id": record_id, "to": to, "version": version or ""},
                       headers={"X-CSRF-Token": csrf_of(page.text)})


def test_a_kanban_move_is_saved_through_the_engine_or_refused_with_the_reason(runtime, crm, records):
    client = client_for(runtime)
    ids = crm["ids"]
    legal = move(client, ids["Alpha"], "proposal")
    assert legal.status_code == 200 and legal.json()["ok"]
    assert legal.json()["totals"]["proposal"]["count"] == 3
    assert records.get("deal", ids["Alpha"], actor=SYSTEM)["stage"] == "proposal"
    illegal = move(client, ids["Echo"], "won")  # the state machine has no new -> won
    assert illegal.status_code == 422 and not illegal.json()["ok"] and illegal.json()["reason"]
    assert records.get("deal", ids["Echo"], actor=SYSTEM)["stage"] == "new"
    invalid = move(client, ids["Charlie"], "lost")  # allowed, but the validation rule wants a reason
    assert invalid.status_code == 422 and "Say why the deal was lost" in invalid.json()["reason"]
    assert records.get("deal", ids["Charlie"], actor=SYSTEM)["stage"] == "proposal"
    not_mine = move(client, ids["Delta"], "new")
    assert not_mine.status_code == 422 and records.get("deal", ids["Delta"], actor=SYSTEM)["stage"] == "won"
    no_csrf = client.post("/app/o/deal/kanban/move", data={"id": ids["Echo"], "to": "proposal"})
    assert no_csrf.status_code == 403 and records.get("deal", ids["Echo"], actor=SYSTEM)["stage"] == "new"


def test_home_shows_my_open_records_and_what_is_due(runtime, crm, records):
    today = Actor().clock.today()
    records.update("deal", crm["ids"]["Echo"], {"close_date": today.isoformat()}, actor=SYSTEM)
    html = client_for(runtime).get("/app").text
    mine = [d for d in DEALS if d[1] in ("new", "proposal") and d[0] != "Delta"]
    assert "My open Deals" in html and f"<strong>{len(mine)}</strong>" in html
    total = sum((Decimal(d[2]) for d in mine if d[2]), Decimal(0))
    assert f"{total:,.2f}" in html
    due = html.split("Due today and overdue", 1)[1].split("</section>", 1)[0]
    assert "Echo" in due and "Alpha" in due and "Delta" not in due  # Delta is Sam's and won


def test_the_inbox_shows_only_my_notifications_and_marks_them_read(runtime, crm):
    now = auth.utcnow()
    with runtime.db.begin() as conn:
        conn.execute(notifications.insert(), [
            {"user_id": crm["rita"], "message": "<b>Bravo</b> was won", "object": "deal",
             "record_id": crm["ids"]["Bravo"], "created_at": now},
            {"user_id": crm["rita"], "message": "second note", "object": None, "record_id": None, "created_at": now},
            {"user_id": crm["sam"], "message": "Sam's secret", "object": None, "record_id": None, "created_at": now}])
    client = client_for(runtime)
    home = client.get("/app").text
    assert 'class="badge"' in home and ">2</span>" in home
    inbox = client.get("/app/notifications").text
    assert "&lt;b&gt;Bravo&lt;/b&gt; was won" in inbox and "Sam's secret" not in inbox
    mine = [int(i) for i in re.findall(r'name="id" value="(\d+)"', inbox)]
    assert client.post("/app/notifications/read", data={"id": str(max(mine))}).status_code == 403  # no CSRF
    marked = client.post("/app/notifications/read", data={"csrf_token": csrf_of(inbox), "id": str(mine[0])})
    assert marked.status_code == 303
    assert ">1</span>" in client.get("/app").text
    with runtime.db.begin() as conn:
        sam_id = conn.execute(sa.select(notifications.c.id).where(notifications.c.user_id == crm["sam"])).scalar_one()
    client.post("/app/notifications/read", data={"csrf_token": csrf_of(inbox), "id": str(sam_id)})
    client.post("/app/notifications/read", data={"csrf_token": csrf_of(inbox)})
    assert 'class="badge"' not in client.get("/app").text
    with runtime.db.begin() as conn:
        unread = conn.execute(sa.select(notifications.c.read_at).where(notifications.c.id == sam_id)).scalar_one()
    assert unread is None  # Rita cannot mark Sam's


PAGE_BUDGET = 200_000  # bytes of JS + CSS per page, gzip-compressed (docs/ui.md)


def test_each_page_sends_at_most_the_budget_of_compressed_js_and_css(runtime, crm):
    client = client_for(runtime)
    for path in ("/app", "/app/o/deal?view=all", "/app/o/deal/kanban", "/app/notifications"):
        html = client.get(path).text
        linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert any(link.startswith("/static/app.css") for link in linked), path
        sent = 0
        for link in linked:
            got = client.get(link.replace("&amp;", "&"), headers={"Accept-Encoding": "gzip"})
            assert got.status_code == 200, link
            sent += int(got.headers["content-length"])
        assert sent <= PAGE_BUDGET, f"{path} sends {sent} bytes of JS and CSS"


def test_list_and_kanban_pages_issue_as_many_statements_for_many_rows_as_for_few(runtime, crm, records):
    from tests.test_statement_counts import counting

    client = client_for(runtime)
    pages = ("/app/o/deal?view=all", "/app/o/deal/kanban", "/app")

    def statements() -> list[int]:
        counts = []
        for path in pages:
            client.get(path)  # caches warm (signed-in caller, revision)
            with counting(runtime.db.engine) as seen:
                assert client.get(path).status_code == 200
            counts.append(len(seen))
        return counts

    few = statements()
    firms = list(crm["firms"].values())
    records.bulk_create("deal", [{"title": f"More {i}", "stage": "new", "amount": i, "account": firms[i % 3],
                                  "close_date": "2026-01-01", "owner": crm["rita" if i % 2 else "sam"]}
                                 for i in range(40)], actor=SYSTEM)
    assert statements() == few
