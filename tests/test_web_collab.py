"""Comments, @mentions, follows and "log a call" on the record page, on both databases, through the
real site app: a mention reaches the mentioned colleague's inbox only (and never carries the
record to someone who may not read it), followers hear of other people's updates, comments of a
record one may not read are a 404, bodies are escaped, every form needs the CSRF token."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from metacrm.engine.automation import comments, inbox
from metacrm.engine.automation.tables import notifications
from metacrm.engine.errors import NotFound, ValidationFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.conftest import install
from tests.test_web_record import DEAL, XSS
from tests.web import csrf_of, make_user, sign_in, site_client

TASK = """
name: deal_task
label: {en: Task}
title_field: subject
fields:
  - {name: subject, type: text, required: true, label: {en: Subject}}
  - {name: due, type: date, label: {en: Due}}
  - {name: deal, type: lookup, target: deal, label: {en: Deal}}
  - name: type
    type: picklist
    default: task
    options:
      - {value: call, label: {en: Call}}
      - {value: task, label: {en: Task}}
permissions:
  rep: {create: true, read: own, edit: own}
"""


def setup(runtime, records):
    install(runtime, DEAL, TASK)
    users = {"rita": make_user(runtime, "Rita Rep", "rita@example.com", ["rep"]),
             "otto": make_user(runtime, "Otto Other", "otto@example.com", ["rep"]),
             "bella": make_user(runtime, "Bella Boss", "bella@example.com", ["boss"]),
             "carl": make_user(runtime, "Carl Chief", "carl@example.com", ["boss"])}
    deal = records.create("deal", {"title": "Acme renewal", "stage": "new", "amount": "100", "margin": "777.77",
                                   "owner": users["rita"]}, actor=SYSTEM)
    return users, deal


def client_of(runtime, email):
    client = site_client(runtime)
    assert sign_in(client, email).status_code == 303
    return client


def actor(users, name, role):
    return Actor(user_id=users[name], roles=frozenset({role}), channel="ui")


def rows_of(runtime, user_id):
    with runtime.db.begin() as conn:
        return conn.execute(sa.select(notifications).where(notifications.c.user_id == user_id)).mappings().all()


def post(client, path, data):
    token = csrf_of(client.get("/app").text)
    return client.post(path, data={"csrf_token": token, **data})


def test_a_mention_reaches_the_mentioned_colleague_only_and_the_comment_is_in_the_timeline(runtime, records):
    users, deal = setup(runtime, records)
    rita = client_of(runtime, "rita@example.com")
    done = post(rita, f"/app/o/deal/{deal['id']}/comment", {"body": "@Bella Boss please check " + XSS})
    assert done.status_code == 303
    page = rita.get(f"/app/o/deal/{deal['id']}").text
    assert "Rita Rep commented" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    bella = inbox.page(records, actor(users, "bella", "boss")).items
    assert len(bella) == 1 and bella[0]["record_id"] == deal["id"] and "Rita Rep mentioned you" in bella[0]["message"]
    assert "please check" in client_of(runtime, "bella@example.com").get("/app/notifications").text
    assert rows_of(runtime, users["carl"]) == [] and rows_of(runtime, users["otto"]) == []


def test_a_mentioned_user_who_may_not_read_the_record_gets_nothing_of_it(runtime, records):
    users, deal = setup(runtime, records)
    body = "@otto@example.com the margin is 777.77 on Acme renewal"
    stored = comments.add(records, "deal", deal["id"], body, actor(users, "rita", "rep"))
    assert stored["mentions"] == [users["otto"]]  # the mention is kept on the comment ...
    assert rows_of(runtime, users["otto"]) == []  # ... but Otto, who may not read the deal, hears nothing
    otto = client_of(runtime, "otto@example.com")
    assert "777" not in otto.get("/app/notifications").text


def test_comments_of_a_record_one_may_not_read_are_a_404(runtime, records):
    users, deal = setup(runtime, records)
    comments.add(records, "deal", deal["id"], "internal note", actor(users, "rita", "rep"))
    with pytest.raises(NotFound):
        comments.listed(records, "deal", deal["id"], actor(users, "otto", "rep"))
    with pytest.raises(NotFound):
        comments.add(records, "deal", deal["id"], "hello", actor(users, "otto", "rep"))
    otto = client_of(runtime, "otto@example.com")
    refused = post(otto, f"/app/o/deal/{deal['id']}/comment", {"body": "let me in"})
    assert refused.status_code == 404 and "internal note" not in refused.text
    assert post(otto, f"/app/o/deal/{deal['id']}/follow", {"action": "follow"}).status_code == 404
    assert len(comments.listed(records, "deal", deal["id"], SYSTEM)) == 1


def test_bad_comment_bodies_are_refused_clearly(runtime, records):
    users, deal = setup(runtime, records)
    rita = actor(users, "rita", "rep")
    for body in ("", "a\x00b", "x" * (comments.MAX_BODY + 1)):
        with pytest.raises(ValidationFailed):
            comments.add(records, "deal", deal["id"], body, rita)
    client = client_of(runtime, "rita@example.com")
    page = post(client, f"/app/o/deal/{deal['id']}/comment", {"body": "x" * (comments.MAX_BODY + 1)})
    assert page.status_code == 422 and "at most" in page.text
    assert comments.listed(records, "deal", deal["id"], SYSTEM) == []


def test_followers_hear_of_updates_by_others_not_their_own_and_unfollow_stops_it(runtime, records):
    users, deal = setup(runtime, records)
    bella = client_of(runtime, "bella@example.com")
    assert post(bella, f"/app/o/deal/{deal['id']}/follow", {"action": "follow"}).status_code == 303
    assert "Unfollow" in bella.get(f"/app/o/deal/{deal['id']}").text
    rita = client_of(runtime, "rita@example.com")
    assert post(rita, f"/app/o/deal/{deal['id']}/follow", {"action": "follow"}).status_code == 303
    records.update("deal", deal["id"], {"amount": "200"}, actor=actor(users, "rita", "rep"))
    told = rows_of(runtime, users["bella"])
    assert len(told) == 1 and told[0]["record_id"] == deal["id"] and "Rita Rep updated" in told[0]["message"]
    assert rows_of(runtime, users["rita"]) == []  # her own update
    assert rows_of(runtime, users["carl"]) == []  # not a follower
    assert post(bella, f"/app/o/deal/{deal['id']}/follow", {"action": "unfollow"}).status_code == 303
    records.update("deal", deal["id"], {"amount": "300"}, actor=actor(users, "rita", "rep"))
    assert len(rows_of(runtime, users["bella"])) == 1


def test_every_collaboration_form_needs_the_csrf_token(runtime, records):
    users, deal = setup(runtime, records)
    rita = client_of(runtime, "rita@example.com")
    for path, data in (("comment", {"body": "forged"}), ("follow", {"action": "follow"}), ("log-call", {})):
        assert rita.post(f"/app/o/deal/{deal['id']}/{path}", data=data).status_code == 403
    assert comments.listed(records, "deal", deal["id"], SYSTEM) == []
    assert records.count("deal_task", [["deal", "eq", deal["id"]]], actor=SYSTEM) == 0


def test_log_a_call_creates_a_call_activity_linked_to_the_record(runtime, records):
    users, deal = setup(runtime, records)
    rita = client_of(runtime, "rita@example.com")
    page = rita.get(f"/app/o/deal/{deal['id']}").text
    assert "Log a call" in page
    done = post(rita, f"/app/o/deal/{deal['id']}/log-call", {})
    assert done.status_code == 303
    tasks = records.list("deal_task", _query(deal), actor=SYSTEM).records
    assert len(tasks) == 1 and tasks[0]["type"] == "call" and tasks[0]["subject"] == "Call"
    assert tasks[0]["created_by"] == users["rita"]
    assert "Call" in rita.get(f"/app/o/deal/{deal['id']}").text


def _query(deal):
    from metacrm.engine.records.query import Query
    return Query(filter=[["deal", "eq", deal["id"]]])


def test_log_a_call_on_a_crm_standard_account_writes_a_done_call_activity(runtime, records):
    from metacrm.engine.records.query import Query
    from metacrm.engine.runtime import find_template
    from metacrm.engine.sample_data import load_sample_data

    template = find_template("crm_standard")
    runtime.apply(runtime.plan(template.objects, author="tests"))
    load_sample_data(records, template.sample_data, SYSTEM)
    make_user(runtime, "Ada Admin", "ada@example.com", ["admin"])
    account = records.list("account", Query(limit=1), actor=SYSTEM).records[0]
    client = client_of(runtime, "ada@example.com")
    assert "Log a call" in client.get(f"/app/o/account/{account['id']}").text
    before = records.count("activity", [["account", "eq", account["id"]]], actor=SYSTEM)
    assert post(client, f"/app/o/account/{account['id']}/log-call", {}).status_code == 303
    calls = records.list("activity", Query(filter=[["account", "eq", account["id"]]], sort=("-created_at",), limit=1),
                         actor=SYSTEM).records
    assert records.count("activity", [["account", "eq", account["id"]]], actor=SYSTEM) == before + 1
    assert calls[0]["type"] == "call" and calls[0]["status"] == "done"


def test_a_deleted_record_takes_its_comments_and_follows_with_it(runtime, records):
    users, deal = setup(runtime, records)
    rita = actor(users, "rita", "rep")
    comments.add(records, "deal", deal["id"], "a note", rita)
    comments.follow(records, "deal", deal["id"], rita)
    records.delete("deal", deal["id"], actor=SYSTEM)
    with runtime.db.begin() as conn:
        assert not comments.following(conn, "deal", deal["id"], rita)
        left = conn.execute(sa.select(sa.func.count()).select_from(comments.comments)).scalar_one()
    assert left == 0
