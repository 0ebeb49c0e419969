"""CSV import/export, admin metadata endpoints, the audit log and privacy requests, over the
REST API on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation.tables import execution_log, outbox
from metacrm.engine.identity.audit import audit_log
from metacrm.engine.records.service import RecordService, history_table
from metacrm.engine.security import auth
from metacrm.engine.storage import sequences
from tests.conftest import install
from metacrm.engine.identity.actor import SYSTEM

CONTACT = """
name: contact
label: {en: Contact, zh-CN: 联系人}
fields:
  - {name: first_name, type: text, label: {en: First name, zh-CN: 名}}
  - {name: last_name, type: text, required: true, label: {en: Last name, zh-CN: 姓}}
  - {name: code, type: auto_number, auto_number: "C-{0000}"}
  - {name: email, type: email, unique: true}
  - {name: phone, type: phone}
  - {name: website, type: url}
  - {name: notes, type: long_text}
  - {name: score, type: integer}
  - {name: tags, type: multi_picklist, options: [vip, partner, press]}
  - {name: birthday, type: date}
  - {name: salary, type: currency}
  - {name: status, type: picklist, options: [new, active], default: new}
permissions:
  rep: {create: true, read: own, edit: own, fields: {salary: hidden}}
  auditor: {read: all, export: true, fields: {salary: hidden}}
automations:
  - name: welcome
    trigger: {on: created}
    actions:
      - notify: {to: owner, message: "New contact {{ record.last_name }}"}
"""

ACTIVITY = """
name: activity
fields:
  - {name: subject, type: text, required: true}
  - {name: contact, type: lookup, target: contact, on_delete: set_null}
"""

LEAD = """
name: lead
fields:
  - {name: last_name, type: text, required: true}
  - {name: email, type: email, required: true, unique: true}
  - {name: phone, type: phone}
  - {name: company, type: text}
  - {name: note, type: long_text}
  - {name: rating, type: integer}
"""


@pytest.fixture
def api(runtime):
    install(runtime, CONTACT, ACTIVITY, LEAD)
    with runtime.db.begin() as conn:
        users = {role: identity.create_user(conn, role.title(), f"{role}@example.com", roles=[role])
                 for role in ("admin", "rep", "auditor")}
        now = auth.utcnow()
        tokens = {role: auth.create_token(conn, user.id, "t", now) for role, user in users.items()}
    client = TestClient(create_app(runtime))
    return client, tokens, {role: u.id for role, u in users.items()}


def h(token: str, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


def post_csv(client, token, text: str | bytes, object_name: str = "contact", **params):
    body = text.encode("utf-8") if isinstance(text, str) else text
    return client.post(f"/api/v1/records/{object_name}/import", content=body, params=params,
                       headers=h(token, **{"Content-Type": "text/csv"}))


def count(runtime, table) -> int:
    with runtime.db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def rows_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.text)))


def by_name(records: RecordService, object_name="contact") -> dict[str, dict]:
    from metacrm.engine.records.query import Query

    return {r["last_name"]: r for r in records.list(object_name, Query(limit=1000), actor=SYSTEM).records}


# -- import ------------------------------------------------------------------------------------


def test_import_maps_headers_by_name_or_label_in_any_language(api, records):
    client, tokens, _ = api
    text = ("\ufeffLast name,名,EMAIL,Tags,score,notes,birthday,colour\r\n"
            'Lovelace,Ada,ada@example.com,vip;press,36,"first line\nsecond line",1815-12-10,red\r\n'
            "Hopper,Grace,,partner,,,,blue\r\n"
            ",,,,,,,\r\n")  # a blank row is skipped
    response = post_csv(client, tokens["admin"], text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["updated"], body["errors"], body["dry_run"]) == (2, 0, [], False)
    assert body["ignored_columns"] == ["colour"]
    made = by_name(records)
    ada = made["Lovelace"]
    assert (ada["first_name"], ada["email"], ada["tags"], ada["score"]) == (
        "Ada", "ada@example.com", ["vip", "press"], 36)
    assert ada["notes"] == "first line\nsecond line" and str(ada["birthday"]) == "1815-12-10"
    assert made["Hopper"]["status"] == "new" and made["Hopper"]["score"] is None  # defaults apply to blank cells
    assert {made["Lovelace"]["code"], made["Hopper"]["code"]} == {"C-0001", "C-0002"}


def test_import_reports_row_errors_by_line_and_writes_the_valid_rows(api, records):
    client, tokens, _ = api
    text = ("last_name,score,email,notes\n"        # line 1
            "Good,1,good@example.com,\n"           # line 2
            "BadScore,abc,,\n"                     # line 3
            'Multi,2,,"two\nlines"\n'              # lines 4-5
            "BadEmail,3,not-an-email,\n"           # line 6
            "Short,4\n"                            # line 7: too few cells
            ",5,,\n"                               # line 8: last_name is required
            "Good2,6,good2@example.com,\n")        # line 9
    response = post_csv(client, tokens["rep"], text)
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["created"] == 3
    errors = {e["row"]: e["errors"] for e in body["errors"]}
    assert sorted(errors) == [3, 6, 7, 8]
    assert [(e["field"], e["code"]) for e in errors[3]] == [("score", "invalid_type")]
    assert [(e["field"], e["code"]) for e in errors[6]] == [("email", "invalid_email")]
    assert errors[7][0]["code"] == "malformed_row"
    assert [(e["field"], e["code"]) for e in errors[8]] == [("last_name", "required")]
    assert sorted(by_name(records)) == ["Good", "Good2", "Multi"]


def test_import_refuses_bad_input_as_problems_and_writes_nothing(api, records, monkeypatch):
    client, tokens, _ = api
    good = "last_name,score\nA,1\n"
    cases = [
        (tokens["admin"], 'last_name,notes\nA,"unterminated\n', {}, 400, "malformed CSV"),
        (tokens["admin"], "last_name\n\xff\n".encode("latin-1"), {}, 400, "UTF-8"),
        (tokens["admin"], "", {}, 400, "empty"),
        (tokens["admin"], "last_name\nA\x00B\n", {}, 400, "NUL character (line 2)"),
        (tokens["admin"], "last_name,last_name\nA,B\n", {}, 400, "twice"),
        (tokens["admin"], good, {"mapping": '{"last_name": "colour"}'}, 400, "unknown field"),
        (tokens["admin"], good, {"mapping": '{"surname": "last_name"}'}, 400, "not in the CSV header"),
        (tokens["admin"], good, {"mapping": "{not json"}, 400, "not valid JSON"),
        (tokens["admin"], good, {"mapping": '{"last_name": "code"}'}, 400, "read-only"),
        (tokens["admin"], good, {"match": "colour"}, 400, "not a field"),
        (tokens["admin"], good, {"match": "email"}, 400, "no column"),
        (tokens["admin"], good, {"match": "tags"}, 400, "cannot be used as a key"),
        (tokens["admin"], good, {"dry_run": "perhaps"}, 400, "dry_run"),
        (tokens["admin"], good, {"bogus": "1"}, 400, "unknown query parameter"),
        # a field hidden from the caller is as unknown as one that does not exist
        (tokens["rep"], "last_name,pay\nA,100\n", {"mapping": '{"last_name": "last_name", "pay": "salary"}'},
         400, "unknown field"),
    ]
    for token, text, params, status, words in cases:
        response = post_csv(client, token, text, **params)
        assert response.status_code == status, (text, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert words in response.json()["detail"], response.json()
    assert response.json()["detail"] == "mapping names unknown field(s) of contact: 'salary'"  # as if it did not exist
    wrong_type = client.post("/api/v1/records/contact/import", content=b"last_name\nA\n",
                             headers=h(tokens["admin"], **{"Content-Type": "application/json"}))
    assert wrong_type.status_code == 415
    latin = client.post("/api/v1/records/contact/import", content=b"last_name\nA\n",
                        headers=h(tokens["admin"], **{"Content-Type": "text/csv; charset=latin-1"}))
    assert latin.status_code == 415
    assert post_csv(client, tokens["admin"], good, object_name="nothing").status_code == 404
    assert post_csv(client, tokens["auditor"], good).status_code == 403  # may read and export, not create
    from metacrm.engine.api import csvio

    monkeypatch.setattr(csvio, "MAX_IMPORT", 64)
    assert post_csv(client, tokens["admin"], "last_name\n" + "A\n" * 40).status_code == 413
    monkeypatch.undo()
    assert client.post("/api/v1/records/contact/import", content=good.encode(),
                       headers={"Content-Type": "text/csv"}).status_code == 401
    # by header (no mapping), a hidden field's column is just not imported
    hidden = post_csv(client, tokens["rep"], "last_name,salary\nA,100\n")
    assert hidden.json()["ignored_columns"] == ["salary"]
    assert records.count("contact", actor=SYSTEM) == 1 and records.get("contact", hidden_id(records), actor=SYSTEM)["salary"] is None


def hidden_id(records) -> str:
    return next(iter(by_name(records).values()))["id"]


def test_dry_run_validates_everything_and_writes_nothing(api, runtime, records):
    client, tokens, _ = api
    existing = records.create("contact", {"last_name": "Old", "email": "old@example.com", "score": 1}, actor=SYSTEM)
    before = {t.name: count(runtime, t) for t in (outbox, history_table, audit_log, sequences.sequence_table)}
    runtime.automation_log.flush()
    logged = count(runtime, execution_log)
    text = ("last_name,email,score\n"
            "New,new@example.com,5\n"
            "Again,old@example.com,7\n"       # an update of Old (match on email)
            "Broken,broken@example.com,x\n"
            "Dup,new@example.com,9\n")        # the same key as line 2
    response = post_csv(client, tokens["admin"], text, dry_run="true", match="email")
    body = response.json()
    assert response.status_code == 207 and body["dry_run"] is True
    assert (body["created"], body["updated"]) == (1, 1)
    assert {e["row"]: e["errors"][0]["code"] for e in body["errors"]} == {4: "invalid_type", 5: "duplicate_key"}
    assert records.count("contact", actor=SYSTEM) == 1
    unchanged = records.get("contact", existing["id"], actor=SYSTEM)
    assert (unchanged["score"], unchanged["version"]) == (1, 1)
    runtime.automation_log.flush()
    after = {t.name: count(runtime, t) for t in (outbox, history_table, audit_log, sequences.sequence_table)}
    assert after == before and count(runtime, execution_log) == logged
    real = post_csv(client, tokens["admin"], text, match="email").json()
    assert (real["created"], real["updated"], len(real["errors"])) == (1, 1, 2)
    assert records.count("contact", actor=SYSTEM) == 2 and count(runtime, outbox) == before["metacrm_outbox"] + 1
    assert by_name(records)["New"]["code"] == "C-0002"  # the dry run gave its auto-numbers back


def test_match_key_updates_visible_records_with_version_checks(api, records, runtime):
    client, tokens, users = api
    admin_made = records.create("contact", {"last_name": "Theirs", "email": "theirs@example.com"}, actor=SYSTEM)
    response = post_csv(client, tokens["rep"], "last_name,email,score\nMine,mine@example.com,1\n")
    assert response.json()["created"] == 1
    mine = by_name(records)["Mine"]
    text = ("last_name,email,score,version\n"
            "Mine,mine@example.com,2,1\n"         # updates (version 1 is current)
            "Other,other@example.com,3,\n"        # another key: a new record
            "Theirs,theirs@example.com,4,\n")     # not visible to the rep: a create, refused as not unique
    body = post_csv(client, tokens["rep"], text, match="email").json()
    assert (body["created"], body["updated"]) == (1, 1)
    assert [(e["row"], e["errors"][0]["code"]) for e in body["errors"]] == [(4, "not_unique")]
    assert records.get("contact", mine["id"], actor=SYSTEM)["score"] == 2 and records.get("contact", mine["id"], actor=SYSTEM)["version"] == 2
    assert records.get("contact", admin_made["id"], actor=SYSTEM)["score"] is None
    stale = post_csv(client, tokens["rep"], "email,score,version\nmine@example.com,9,1\n", match="email").json()
    assert stale["updated"] == 0 and stale["errors"][0]["errors"][0]["code"] == "conflict"
    assert records.get("contact", mine["id"], actor=SYSTEM)["score"] == 2
    # a blank cell on update clears the field; an explicit mapping picks the columns
    cleared = post_csv(client, tokens["rep"], "Mail,Points,x\nmine@example.com,,junk\n", match="email",
                       mapping=json.dumps({"Mail": "email", "Points": "score"})).json()
    assert cleared["updated"] == 1 and records.get("contact", mine["id"], actor=SYSTEM)["score"] is None
    # export and re-import by id round-trips, formula-looking text included
    records.update("contact", mine["id"], {"notes": "=HYPERLINK(\"http://evil\")", "tags": ["vip", "press"]}, actor=SYSTEM)
    exported = client.get("/api/v1/records/contact/export", headers=h(tokens["admin"]))
    row = next(r for r in rows_of(exported) if r["id"] == mine["id"])
    assert row["notes"] == "'=HYPERLINK(\"http://evil\")" and row["tags"] == "vip;press"
    row["first_name"] = "Changed"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    back = post_csv(client, tokens["admin"], buffer.getvalue(), match="id").json()
    assert (back["created"], back["updated"], back["errors"]) == (0, 1, []), back
    again = records.get("contact", mine["id"], actor=SYSTEM)
    assert again["first_name"] == "Changed" and again["notes"] == "=HYPERLINK(\"http://evil\")"
    assert again["tags"] == ["vip", "press"] and again["owner"] == users["rep"]
    missing = post_csv(client, tokens["admin"], "id,last_name\n00000000-0000-0000-0000-000000000001,X\n",
                       match="id").json()
    assert missing["errors"][0]["errors"][0]["code"] == "not_found"


# -- export ------------------------------------------------------------------------------------


def test_export_streams_pages_respects_permissions_hidden_fields_and_audits(api, records, runtime):
    client, tokens, users = api
    rows = [{"last_name": f"P{i:04d}", "score": i, "salary": "1234.50", "tags": ["vip"] if i % 2 else []}
            for i in range(1005)]
    assert records.bulk_create("contact", rows, actor=SYSTEM).written == 1005
    service = client.app.state.records
    calls = []
    original = service.list

    def spy(object_name, query, *, actor, **kwargs):
        page = original(object_name, query, actor=actor, **kwargs)
        calls.append((query.limit, len(page.records)))
        return page

    service.list = spy
    full = client.get("/api/v1/records/contact/export", params={"sort": "last_name"}, headers=h(tokens["admin"]))
    assert full.status_code == 200 and full.headers["content-type"].startswith("text/csv")
    assert "attachment" in full.headers["content-disposition"]
    exported = rows_of(full)
    assert [r["last_name"] for r in exported] == [f"P{i:04d}" for i in range(1005)]
    assert exported[0]["salary"] == "1234.50" and exported[1]["tags"] == "vip" and exported[0]["tags"] == ""
    assert calls == [(1000, 1000), (1000, 5)]  # page by page, never the whole table
    service.list = original

    seen = client.get("/api/v1/records/contact/export",
                      params={"filter": json.dumps([["score", "ge", 1000]]), "fields": "last_name,score"},
                      headers=h(tokens["auditor"]))
    assert seen.status_code == 200
    assert seen.text.splitlines()[0] == "id,last_name,score"
    assert sorted(r["score"] for r in rows_of(seen)) == ["1000", "1001", "1002", "1003", "1004"]
    everything = client.get("/api/v1/records/contact/export", headers=h(tokens["auditor"]))
    assert "salary" not in everything.text and "1234.5" not in everything.text
    assert len(rows_of(everything)) == 1005
    hidden = client.get("/api/v1/records/contact/export", params={"fields": "last_name,salary"},
                        headers=h(tokens["auditor"]))
    assert hidden.status_code == 422 and "1234" not in hidden.text
    refused = client.get("/api/v1/records/contact/export", headers=h(tokens["rep"]))
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/records/contact/export").status_code == 401
    bad = client.get("/api/v1/records/contact/export", params={"filter": "[[\"nope\", \"eq\", 1]]"},
                     headers=h(tokens["admin"]))
    assert bad.status_code == 422
    audit = client.get("/api/v1/admin/audit", params={"event": "export"}, headers=h(tokens["admin"])).json()["entries"]
    assert [(e["user_id"], e["object"], e["detail"]["rows"], e["detail"]["complete"]) for e in audit] == [
        (users["auditor"], "contact", 1005, True), (users["auditor"], "contact", 5, True),
        (users["admin"], "contact", 1005, True)]
    assert audit[1]["detail"]["filter"] == [[["score", "ge", 1000]]]


# -- admin metadata and audit --------------------------------------------------------------------


def test_admin_endpoints_are_for_admins_only(api, records):
    client, tokens, _ = api
    person = records.create("contact", {"last_name": "X"}, actor=SYSTEM)
    calls = [("post", "/api/v1/admin/metadata/plan", {"json": {"documents": {"a.yaml": LEAD}}}),
             ("post", "/api/v1/admin/metadata/apply", {"json": {"documents": {"a.yaml": LEAD}}}),
             ("get", "/api/v1/admin/audit", {}),
             ("get", f"/api/v1/privacy/contact/{person['id']}/export", {}),
             ("post", f"/api/v1/privacy/contact/{person['id']}/erase", {"json": {"reason": "asked"}})]
    for method, path, kwargs in calls:
        for role in ("rep", "auditor"):
            response = getattr(client, method)(path, headers=h(tokens[role]), **kwargs)
            assert response.status_code == 403, (path, role, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert getattr(client, method)(path, **kwargs).status_code == 401
    assert records.get("contact", person["id"], actor=SYSTEM)["last_name"] == "X"


def test_metadata_plan_apply_and_audit(api, runtime, records):
    client, tokens, _ = api
    changed = LEAD.replace("  - {name: rating, type: integer}", "  - {name: rating, type: integer}\n"
                                                                    "  - {name: source, type: text}")
    plan = client.post("/api/v1/admin/metadata/plan", json={"documents": {"lead.yaml": changed}},
                       headers=h(tokens["admin"]))
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert body["base_revision"] == runtime.model.revision
    assert body["changes"] == [{"action": "add_field", "object": "lead", "safety": "safe",
                                "description": "add field 'source' (text)"}]
    assert "add field 'source'" in body["text"]
    assert not runtime.model.object("lead").has_field("source")  # planning changes nothing
    stale = client.post("/api/v1/admin/metadata/apply", json={"documents": {"lead.yaml": changed},
                                                              "base_revision": body["base_revision"] - 1},
                        headers=h(tokens["admin"]))
    assert stale.status_code == 409 and not runtime.model.object("lead").has_field("source")
    applied = client.post("/api/v1/admin/metadata/apply", json={"documents": {"lead.yaml": changed},
                                                                "base_revision": body["base_revision"]},
                          headers=h(tokens["admin"]))
    assert applied.status_code == 200, applied.text
    assert applied.json()["revision"] == body["base_revision"] + 1
    made = client.post("/api/v1/records/lead", json={"last_name": "L", "email": "l@example.com", "source": "web"},
                       headers=h(tokens["admin"]))
    assert made.status_code == 201 and made.json()["source"] == "web"
    entries = client.get("/api/v1/admin/audit", params={"event": "metadata_apply", "limit": 1},
                         headers=h(tokens["admin"])).json()["entries"]
    assert len(entries) == 1 and entries[0]["detail"]["revision"] == body["base_revision"] + 1
    assert any("source" in line for line in entries[0]["detail"]["changes"])
    assert "admin@example.com" in entries[0]["detail"]["author"]
    for params in ({"limit": "0"}, {"limit": "x"}, {"event": "a\x00"}, {"user": "x"}):
        assert client.get("/api/v1/admin/audit", params=params, headers=h(tokens["admin"])).status_code == 400
    # existing rows that do not fit a change: 409 with the data problems, nothing applied
    records.create("lead", {"last_name": "No rating", "email": "n@example.com"}, actor=SYSTEM)
    required = changed.replace("{name: rating, type: integer}", "{name: rating, type: integer, required: true}")
    refused = client.post("/api/v1/admin/metadata/apply", json={"documents": {"lead.yaml": required}},
                          headers=h(tokens["admin"]))
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["field"] == "lead.rating" and refused.json()["errors"][0]["count"] == 2
    assert not runtime.model.object("lead").field("rating").required


def test_metadata_errors_come_back_as_422_with_file_and_line(api, runtime):
    client, tokens, _ = api
    revision = runtime.model.revision
    broken_yaml = "name: thing\nfields:\n  - {name: a, type: text\n"
    response = client.post("/api/v1/admin/metadata/plan", json={"documents": {"thing.yaml": broken_yaml}},
                           headers=h(tokens["admin"]))
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    error = response.json()["errors"][0]
    assert error["file"] == "thing.yaml" and error["line"] == 4 and "invalid YAML" in error["message"]
    bad_type = "name: thing\nfields:\n  - {name: a, type: text}\n  - {name: b, type: colour}\n"
    response = client.post("/api/v1/admin/metadata/apply", json={"documents": {"thing.yaml": bad_type}},
                           headers=h(tokens["admin"]))
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["file"], error["line"], error["field"]) == ("thing.yaml", 4, "fields[1].type")
    bad_target = "name: thing\nfields:\n  - {name: a, type: text}\n  - {name: b, type: lookup, target: nowhere}\n"
    response = client.post("/api/v1/admin/metadata/apply", json={"documents": {"thing.yaml": bad_target}},
                           headers=h(tokens["admin"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["file"] == "thing.yaml" and response.json()["errors"][0]["line"] == 4
    for body in ({"documents": {}}, {"documents": {"a.yaml": 5}}, {"documents": {"a.yaml": "x"}, "purge": "yes"},
                 {"documents": {"a.yaml": "x"}, "surprise": 1}, {"documents": {"a.yaml": "name: a\x00"}}, ["a"]):
        assert client.post("/api/v1/admin/metadata/plan", json=body, headers=h(tokens["admin"])).status_code == 400
    assert runtime.model.revision == revision and "thing" not in runtime.model


# -- privacy -------------------------------------------------------------------------------------


def test_privacy_export_gathers_the_record_its_history_and_related_records(api, records):
    client, tokens, _ = api
    person = records.create("contact", {"last_name": "Doe", "email": "jane@example.com", "salary": "10.00"}, actor=SYSTEM)
    records.update("contact", person["id"], {"first_name": "Jane"}, actor=SYSTEM)
    records.create("activity", {"subject": "Call Jane", "contact": person["id"]}, actor=SYSTEM)
    records.create("activity", {"subject": "Someone else"}, actor=SYSTEM)
    response = client.get(f"/api/v1/privacy/contact/{person['id']}/export", headers=h(tokens["admin"]))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["record"]["email"] == "jane@example.com" and data["record"]["salary"] == 10
    assert [(e["field"], e["old_value"], e["new_value"]) for e in data["history"]] == [("first_name", None, "Jane")]
    assert data["related"] == [{"object": "activity", "field": "contact", "records": [
        {**data["related"][0]["records"][0], "subject": "Call Jane", "contact": person["id"]}]}]
    assert client.get("/api/v1/privacy/contact/00000000-0000-0000-0000-000000000000/export",
                      headers=h(tokens["admin"])).status_code == 404
    assert client.get(f"/api/v1/privacy/nothing/{person['id']}/export", headers=h(tokens["admin"])).status_code == 404
    audit = client.get("/api/v1/admin/audit", params={"event": "privacy_export"}, headers=h(tokens["admin"])).json()
    assert audit["entries"][0]["record_id"] == person["id"]


def test_privacy_erase_leaves_no_trace_of_the_old_values(api, records, runtime):
    client, tokens, users = api
    secrets = {"last_name": "Zaphodsson", "email": "zaphod@heartofgold.example", "phone": "+44 20 7946 0999",
               "company": "Heart of Gold Ltd", "note": "Met at the Restaurant at the End of the Universe"}
    lead = records.create("lead", {**secrets, "rating": 5}, actor=SYSTEM)
    records.update("lead", lead["id"], {"company": "Sirius Cybernetics", "rating": 4}, actor=SYSTEM)
    secrets["company2"] = "Sirius Cybernetics"
    other = records.create("lead", {"last_name": "Other", "email": "other@example.com"}, actor=SYSTEM)
    assert client.post(f"/api/v1/privacy/lead/{lead['id']}/erase", json={},
                       headers=h(tokens["admin"])).status_code == 400
    response = client.post(f"/api/v1/privacy/lead/{lead['id']}/erase",
                           json={"reason": "Request from Zaphodsson (zaphod@heartofgold.example), ticket 42"},
                           headers=h(tokens["admin"]))
    assert response.status_code == 200, response.text
    assert response.json()["erased"] == ["company", "email", "last_name", "note", "phone"]
    assert response.json()["history_rows_deleted"] == 2  # company and rating changed once
    erased = records.get("lead", lead["id"], actor=SYSTEM)
    assert (erased["last_name"], erased["email"], erased["phone"], erased["company"], erased["note"]) == (
        "erased", f"erased-{lead['id']}@invalid.example", None, None, None)
    assert erased["rating"] == 4  # not personal text: kept
    assert records.history("lead", lead["id"], actor=SYSTEM) == []
    with runtime.db.engine.connect() as conn:
        stored = " ".join(str(tuple(r)) for table in (runtime.tables()["lead"], history_table, audit_log)
                          for r in conn.execute(sa.select(table)))
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.event == "privacy_erase")).one()
    for value in secrets.values():
        assert value.lower() not in stored.lower(), value
    assert entry.user_id == users["admin"] and entry.record_id == lead["id"]
    assert entry.detail["fields"] == ["company", "email", "last_name", "note", "phone"]
    assert entry.detail["reason"] == "Request from [erased] ([erased]), ticket 42"
    assert records.get("lead", other["id"], actor=SYSTEM)["email"] == "other@example.com"
    # a second person can be erased too: unique placeholders do not collide
    assert client.post(f"/api/v1/privacy/lead/{other['id']}/erase", json={"reason": "asked"},
                       headers=h(tokens["admin"])).status_code == 200
