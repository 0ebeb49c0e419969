"""The record page and the generated forms on both databases, through the real site app
(TestClient): fields by layout without anything hidden, 404 for a record the user may not see,
creating and editing through forms (errors at their field with the input kept, a stale edit
shown as a conflict), the timeline, escaping, CSRF, and conditional fields evaluated on the server."""

from __future__ import annotations

import re

import gzip

from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.automation.worker import Worker
from metacrm.engine.identity.actor import SYSTEM
from tests.conftest import install
from tests.web import csrf_of, make_user, sign_in, site_client

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
DEAL = """
name: deal
label: {en: Deal, zh-CN: 交易, zh-TW: 交易}
title_field: title
fields:
  - {name: title, type: text, required: true, label: {en: Title, zh-CN: 标题, zh-TW: 標題}}
  - name: stage
    type: picklist
    label: {en: Stage, zh-CN: 阶段, zh-TW: 階段}
    options:
      - {value: new, label: {en: New deal, zh-CN: 新交易, zh-TW: 新交易}}
      - {value: won, label: {en: Won, zh-CN: 赢单, zh-TW: 贏單}}
      - {value: lost, label: {en: Lost, zh-CN: 输单, zh-TW: 輸單}}
  - {name: amount, type: decimal, precision: 12, scale: 2, min: 0, label: {en: Amount, zh-CN: 金额, zh-TW: 金額}}
  - {name: margin, type: decimal, precision: 12, scale: 2, label: {en: Secret margin}}
  - {name: why_lost, type: text, visible_if: "stage == 'lost'", label: {en: Why lost}}
  - {name: site, type: url, label: {en: Web site}}
  - {name: net, type: formula, result_type: decimal, expression: "amount - margin", label: {en: Net}}
  - {name: double, type: formula, result_type: decimal, expression: "amount * 2", label: {en: Double}}
layouts:
  form:
    sections:
      - label: {en: Deal facts}
        columns: 2
        fields: [title, stage, amount, margin, why_lost, site, net, double, owner]
  related_lists:
    - {object: deal_task, via: deal, label: {en: Tasks}, columns: [subject, due]}
state_machines:
  - field: stage
    transitions:
      - {from: new, to: won}
      - {from: new, to: lost}
automations:
  - name: announce_won
    trigger: {on: changed, fields: [stage], to: [won]}
    actions:
      - email: {to: [owner], subject: "Won: {{ record.title }}", body: "Margin {{ record.margin }}"}
      - notify: {to: owner, message: "{{ record.title }} was won"}
approval_processes:
  - name: big_deal
    label: {en: Big deal approval}
    steps:
      - {name: boss, approvers: ["role:boss"]}
permissions:
  rep: {create: true, read: own, edit: own, fields: {margin: hidden}}
  boss: {read: all}
"""
TASK = """
name: deal_task
label: {en: Task}
title_field: subject
fields:
  - {name: subject, type: text, required: true, label: {en: Subject}}
  - {name: due, type: date, label: {en: Due}}
  - {name: deal, type: lookup, target: deal, label: {en: Deal}}
permissions:
  rep: {create: true, read: own, edit: own}
"""


def setup(runtime, records):
    install(runtime, DEAL, TASK)
    rita = make_user(runtime, "Rita Rep", "rita@example.com", ["rep"])
    make_user(runtime, "Otto Other", "otto@example.com", ["rep"])
    make_user(runtime, "Bella Boss", "bella@example.com", ["boss"])
    deal = records.create("deal", {"title": XSS, "stage": "new", "amount": "1200.5", "margin": "777.77",
                                   "site": "https://example.org/?q=<b>", "owner": rita}, actor=SYSTEM)
    records.create("deal_task", {"subject": "Call the buyer", "due": "2026-12-24", "deal": deal["id"],
                                 "owner": rita}, actor=SYSTEM)
    return deal


def client_of(runtime, email="rita@example.com"):
    client = site_client(runtime)
    assert sign_in(client, email).status_code == 303
    return client


def test_the_record_page_shows_the_layout_formatted_and_nothing_hidden(runtime, records):
    deal = setup(runtime, records)
    page = client_of(runtime).get(f"/app/o/deal/{deal['id']}")
    assert page.status_code == 200
    html = page.text
    assert "Deal facts" in html and "Amount" in html and "1,200.50" in html and "Rita Rep" in html
    assert "Secret margin" not in html and "777.77" not in html and "margin" not in html
    assert "Why lost" not in html  # visible_if is false for a new deal
    assert "Move to Won" in html and "Move to Lost" in html
    assert "Call the buyer" in html and f'/app/o/deal_task/new?deal={deal["id"]}' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r"<title>&lt;script&gt;", html)
    assert 'href="javascript:' not in html


def test_a_record_the_user_may_not_see_is_a_404_page(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime, "otto@example.com")
    for path in (f"/app/o/deal/{deal['id']}", f"/app/o/deal/{deal['id']}/edit", "/app/o/deal/no-such-id"):
        page = client.get(path)
        assert page.status_code == 404 and "Not found" in page.text and "alert(1)" not in page.text


def test_create_through_the_form_with_an_error_at_its_field_and_the_input_kept(runtime, records):
    setup(runtime, records)
    client = client_of(runtime)
    form = client.get("/app/o/deal/new")
    assert form.status_code == 200 and 'name="margin"' not in form.text
    assert 'hx-post="/app/o/deal/form-state"' in form.text  # why_lost depends on the stage
    token = csrf_of(form.text)
    refused = client.post("/app/o/deal/new", data={"csrf_token": token, "title": "Big one", "stage": "new",
                                                   "amount": "-5", "site": "https://example.com"})
    assert refused.status_code == 422
    field = re.search(r'<div class="field has-error" data-field="amount">.*?</div>\s*</div>|'
                      r'<div class="field has-error" data-field="amount">.*?field-error[^>]*>([^<]*)<',
                      refused.text, re.S)
    assert field is not None and "at least 0" in field.group(0)
    assert 'value="Big one"' in refused.text and 'value="-5"' in refused.text
    done = client.post("/app/o/deal/new", data={"csrf_token": token, "title": "Big one", "stage": "new",
                                                "amount": "5000", "site": "https://example.com"})
    assert done.status_code == 303
    shown = client.get(done.headers["location"])
    assert "Big one" in shown.text and "5,000.00" in shown.text and 'href="https://example.com"' in shown.text


def test_an_edit_shows_in_the_timeline_and_a_stale_edit_shows_the_conflict(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    form = client.get(f"/app/o/deal/{deal['id']}/edit")
    assert "<script>alert(1)" not in form.text and "Edit Deal: &lt;script&gt;alert(1)" in form.text
    token = csrf_of(form.text)
    version = re.search(r'name="version" value="(\d+)"', form.text).group(1)
    saved = client.post(f"/app/o/deal/{deal['id']}/edit", data={
        "csrf_token": token, "version": version, "title": XSS, "stage": "new", "amount": "2500", "site": ""})
    assert saved.status_code == 303
    timeline = client.get(f"/app/o/deal/{deal['id']}").text.split('class="timeline"')[1]
    assert "Rita Rep changed" in timeline and "1,200.50" in timeline and "2,500.00" in timeline
    assert "Secret margin" not in timeline
    records.update("deal", deal["id"], {"amount": "9999"}, actor=SYSTEM)  # someone else saves first
    stale = client.post(f"/app/o/deal/{deal['id']}/edit", data={
        "csrf_token": token, "version": str(int(version) + 1), "title": XSS, "stage": "new", "amount": "3100",
        "site": ""})
    assert stale.status_code == 409
    assert "Someone else saved this record" in stale.text and "9,999.00" in stale.text and "3,100.00" in stale.text
    assert 'value="3100"' in stale.text and re.search(r'name="version" value="(\d+)"', stale.text).group(1) == str(
        int(version) + 2)
    again = client.post(f"/app/o/deal/{deal['id']}/edit", data={
        "csrf_token": token, "version": str(int(version) + 2), "title": XSS, "stage": "new", "amount": "3100",
        "site": ""})
    assert again.status_code == 303
    assert records.get("deal", deal["id"], actor=SYSTEM)["amount"] == 3100


def test_posts_without_the_csrf_token_are_refused(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    for path, data in ((f"/app/o/deal/{deal['id']}/edit", {"title": "x", "version": "1"}),
                       ("/app/o/deal/new", {"title": "x"}), (f"/app/o/deal/{deal['id']}/move",
                                                             {"field": "stage", "to": "won"}),
                       ("/app/o/deal/form-state", {"stage": "lost"})):
        refused = client.post(path, data=data)
        assert refused.status_code == 403, path
    assert records.get("deal", deal["id"], actor=SYSTEM)["stage"] == "new"


def test_conditional_fields_follow_the_input_and_transitions_go_through_the_engine(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    token = csrf_of(client.get("/app/o/deal/new").text)
    lost = client.post("/app/o/deal/form-state", data={"csrf_token": token, "title": "a", "stage": "lost"})
    assert lost.status_code == 200 and 'name="why_lost"' in lost.text and "<html" not in lost.text
    kept = client.post("/app/o/deal/form-state", data={"csrf_token": token, "title": "a", "stage": "new"})
    assert 'name="why_lost"' not in kept.text
    page = client.get(f"/app/o/deal/{deal['id']}")
    moved = client.post(f"/app/o/deal/{deal['id']}/move", data={"csrf_token": csrf_of(page.text), "field": "stage",
                                                                 "to": "won", "version": str(deal["version"])})
    assert moved.status_code == 303 and records.get("deal", deal["id"], actor=SYSTEM)["stage"] == "won"
    back = client.post(f"/app/o/deal/{deal['id']}/move", data={"csrf_token": csrf_of(page.text), "field": "stage",
                                                                "to": "new"})
    assert back.status_code == 422 and "cannot go from Won to New deal" in back.text
    other = client.post(f"/app/o/deal/{deal['id']}/move", data={"csrf_token": csrf_of(page.text), "field": "title",
                                                                 "to": "renamed"})
    assert other.status_code == 400 and records.get("deal", deal["id"], actor=SYSTEM)["title"] == XSS
    assert "Move to" not in client.get(f"/app/o/deal/{deal['id']}").text  # no transition out of won


def test_lookup_options_are_only_records_the_user_may_see(runtime, records):
    deal = setup(runtime, records)
    records.create("deal", {"title": "Otto's secret deal", "stage": "new"}, actor=SYSTEM)
    client = client_of(runtime)
    found = client.get("/app/o/deal/options?q=")
    assert found.status_code == 200
    assert [o["value"] for o in found.json()] == [deal["id"]]
    assert client.get("/app/people?q=otto").json()[0]["text"] == "Otto Other"


def test_the_timeline_merges_history_approvals_messages_and_follow_ups_as_each_user_may_see_them(runtime, records):
    deal = setup(runtime, records)
    records.update("deal", deal["id"], {"margin": "123.45", "title": "Renamed <b>deal</b>"}, actor=SYSTEM)
    Approvals(records).submit("deal", deal["id"], "big_deal", SYSTEM, comment="please <i>approve</i>")
    Approvals(records).recall(_pending_id(runtime, deal["id"]), SYSTEM)
    client = client_of(runtime)
    page = client.get(f"/app/o/deal/{deal['id']}")
    move = client.post(f"/app/o/deal/{deal['id']}/move", data={"csrf_token": csrf_of(page.text), "field": "stage",
                                                                "to": "won"})
    assert move.status_code == 303
    Worker(runtime).deliver_due()  # notifications reach the inbox through the outbox
    timeline = client.get(f"/app/o/deal/{deal['id']}").text.split('class="timeline"')[1]
    kinds = re.findall(r'<li class="tl tl-(\w+)">', timeline)
    assert kinds[0] in ("change", "email", "notification") and kinds[-1] == "created"
    assert {"change", "approval", "email", "notification", "activity", "created"} <= set(kinds)
    assert "Renamed &lt;b&gt;deal&lt;/b&gt;" in timeline and "<b>deal" not in timeline
    assert "Secret margin" not in timeline and "123.45" not in timeline and "777.77" not in timeline
    assert "Big deal approval" in timeline and "please &lt;i&gt;approve&lt;/i&gt;" in timeline
    assert "Won: Renamed &lt;b&gt;deal&lt;/b&gt;" in timeline  # her own e-mail's subject, as text
    assert "was won" in timeline and "Call the buyer" in timeline
    boss = client_of(runtime, "bella@example.com").get(f"/app/o/deal/{deal['id']}").text
    assert "Secret margin" in boss and "123.45" in boss  # the same page shows it to a user who may see it
    boss_timeline = boss.split('class="timeline"')[1]
    assert "Won: Renamed" not in boss_timeline and "was won" not in boss_timeline  # not her e-mail or inbox


def _pending_id(runtime, record_id):
    import sqlalchemy as sa
    from metacrm.engine.automation.tables import approvals
    with runtime.db.engine.connect() as conn:
        return conn.execute(sa.select(approvals.c.id).where(approvals.c.record_id == record_id)).scalar_one()


def test_hidden_fields_are_in_no_form_and_no_form_fragment(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    for path in ("/app/o/deal/new", f"/app/o/deal/{deal['id']}/edit"):
        html = client.get(path).text
        assert "margin" not in html and "Secret" not in html and "777.77" not in html, path
    token = csrf_of(client.get("/app/o/deal/new").text)
    fragment = client.post("/app/o/deal/form-state", data={"csrf_token": token, "id": deal["id"], "stage": "lost",
                                                             "margin": "1"})
    assert fragment.status_code == 200 and "margin" not in fragment.text and "777.77" not in fragment.text
    smuggled = client.post(f"/app/o/deal/{deal['id']}/edit", data={
        "csrf_token": token, "version": str(deal["version"]), "title": "t", "stage": "new", "margin": "1"})
    assert smuggled.status_code == 303  # a field not on the user's form is ignored, never written
    assert str(records.get("deal", deal["id"], actor=SYSTEM)["margin"]) == "777.77"


def test_the_form_page_stays_within_the_page_budget(runtime, records):
    setup(runtime, records)
    client = client_of(runtime)
    html = client.get("/app/o/deal/new").text
    linked = [part.split('"')[0] for part in html.split('src="')[1:] + html.split('href="')[1:]
              if part.startswith("/static/")]
    assert any("forms.js" in url for url in linked) and any("flatpickr" in url for url in linked)
    sent = sum(len(gzip.compress(client.get(url).content, 9)) for url in linked)
    assert sent <= 200_000, f"the form page loads {sent} bytes of JS and CSS, compressed"


def test_approval_submit_and_decide_from_the_record_page(runtime, records):
    deal = setup(runtime, records)
    rita = client_of(runtime)
    page = rita.get(f"/app/o/deal/{deal['id']}").text
    assert "Submit for Big deal approval" in page and "Approve" not in page
    sent = rita.post(f"/app/o/deal/{deal['id']}/approval", data={
        "csrf_token": csrf_of(page), "action": "submit", "process": "big_deal", "comment": "<b>please</b>"})
    assert sent.status_code == 303
    locked = rita.get(f"/app/o/deal/{deal['id']}").text
    assert "Waiting for approval: Big deal approval" in locked and f"/app/o/deal/{deal['id']}/edit" not in locked
    assert "Recall" in locked and ">Approve<" not in locked
    assert rita.get(f"/app/o/deal/{deal['id']}/edit").status_code == 200  # the form opens; the engine refuses
    bella = client_of(runtime, "bella@example.com")
    seen = bella.get(f"/app/o/deal/{deal['id']}").text
    assert ">Approve<" in seen and ">Reject<" in seen and "Recall" not in seen
    approval = re.search(r'name="approval" value="(\d+)"', seen).group(1)
    done = bella.post(f"/app/o/deal/{deal['id']}/approval", data={
        "csrf_token": csrf_of(seen), "action": "approve", "approval": approval, "comment": "ok"})
    assert done.status_code == 303
    again = bella.post(f"/app/o/deal/{deal['id']}/approval", data={
        "csrf_token": csrf_of(seen), "action": "approve", "approval": approval})
    assert again.status_code == 422 and "already approved" in again.text
    timeline = rita.get(f"/app/o/deal/{deal['id']}").text.split('class="timeline"')[1]
    assert "Bella Boss: approved" in timeline and "Rita Rep: submitted for approval" in timeline
    assert "&lt;b&gt;please&lt;/b&gt;" in timeline


def test_a_related_lists_new_prefills_the_lookup_with_the_parent(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    form = client.get(f"/app/o/deal_task/new?deal={deal['id']}&margin=1")
    assert form.status_code == 200
    assert f'<option value="{deal["id"]}" selected>&lt;script&gt;alert(1)' in form.text
    assert 'href="/app/o/deal/new"' in form.text  # "+ New" for the lookup's target
    assert "hx-post" not in form.text  # nothing on this form depends on other fields: no round trips
    saved = client.post("/app/o/deal_task/new", data={"csrf_token": csrf_of(form.text), "subject": "Follow up",
                                                      "deal": deal["id"], "due": "2026-12-31"})
    assert saved.status_code == 303
    page = client.get(f"/app/o/deal/{deal['id']}").text
    assert "Follow up" in page.split('class="timeline"')[1]


def test_odd_input_gets_a_clear_answer_never_a_server_error(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    token = csrf_of(client.get("/app/o/deal/new").text)
    for amount in ("9" * 5000, "1e-999999999", "NaN", "Infinity"):
        refused = client.post("/app/o/deal/new", data={"csrf_token": token, "title": "x", "amount": amount})
        assert refused.status_code == 422 and 'data-field="amount"' in refused.text, amount
    assert client.post("/app/o/deal/new", data={"csrf_token": token, "title": "a\x00b"}).status_code == 422
    assert client.post("/app/o/deal/new", data={"csrf_token": token, "title": "x" * 300_000}).status_code == 413
    assert client.get("/app/people?q=%00").status_code == 200
    assert client.get("/app/o/deal/options?q=%00%25_").json() == []
    huge = client.post(f"/app/o/deal/{deal['id']}/approval", data={"csrf_token": token, "action": "approve",
                                                                   "approval": "9" * 30})
    assert huge.status_code == 400
    stale = client.post(f"/app/o/deal/{deal['id']}/edit", data={"csrf_token": token, "version": "9" * 30,
                                                                 "title": "y"})
    assert stale.status_code in (303, 409)


def test_formula_previews_never_compute_with_a_hidden_value(runtime, records):
    deal = setup(runtime, records)
    client = client_of(runtime)
    edit = client.get(f"/app/o/deal/{deal['id']}/edit").text
    assert "2,401.00" in edit and 'data-field="net"' not in edit  # a formula over the margin is hidden too
    fragment = client.post("/app/o/deal/form-state", data={"csrf_token": csrf_of(edit), "id": deal["id"],
                                                             "title": "t", "stage": "new", "amount": "1000"}).text
    assert "2,000.00" in fragment  # amount * 2 follows the input
    assert "Net" not in fragment and "422.73" not in fragment and "222.23" not in fragment


def test_every_crm_standard_object_has_a_record_page_and_forms(runtime, records):
    from metacrm.engine.records.query import Query
    from metacrm.engine.runtime import find_template
    from metacrm.engine.sample_data import load_sample_data

    template = find_template("crm_standard")
    runtime.apply(runtime.plan(template.objects, author="tests"))
    load_sample_data(records, template.sample_data, SYSTEM)
    make_user(runtime, "Ada Admin", "ada@example.com", ["admin"])
    client = client_of(runtime, "ada@example.com")
    for name in runtime.model.objects:
        first = records.list(name, Query(limit=1), actor=SYSTEM).records[0]
        for path in (f"/app/o/{name}/{first['id']}", f"/app/o/{name}/{first['id']}/edit", f"/app/o/{name}/new"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[-500:])
        edit = client.get(f"/app/o/{name}/{first['id']}/edit").text
        unchanged = client.post(f"/app/o/{name}/{first['id']}/edit", data=form_fields(edit))
        assert unchanged.status_code == 303, (name, re.findall(r'class="field-error"[^>]*>([^<]*)', unchanged.text))
        assert records.get(name, first["id"], actor=SYSTEM)["version"] == first["version"]  # nothing written


def form_fields(html: str) -> dict[str, list[str]]:
    """What a browser would submit for the record form in `html`, unchanged."""
    from html.parser import HTMLParser

    class Form(HTMLParser):
        def __init__(self):
            super().__init__()
            self.fields, self.select, self.textarea = [], None, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "input" and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
                self.fields.append((a["name"], a.get("value") or ("on" if a.get("type") == "checkbox" else "")))
            elif tag == "select":
                self.select = a.get("name")
            elif tag == "option" and self.select and "selected" in a:
                self.fields.append((self.select, a.get("value", "")))
            elif tag == "textarea":
                self.textarea = [a.get("name"), ""]

        def handle_data(self, data):
            if self.textarea:
                self.textarea[1] += data

        def handle_endtag(self, tag):
            if tag == "select":
                self.select = None
            if tag == "textarea" and self.textarea:
                self.fields.append(tuple(self.textarea))
                self.textarea = None

    parser = Form()
    parser.feed(html.split('class="record-form"')[1])
    fields: dict[str, list[str]] = {}
    for name, value in parser.fields:
        fields.setdefault(name, []).append(value)
    return fields
