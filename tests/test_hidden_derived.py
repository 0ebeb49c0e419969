"""Hidden fields and everything computed from them, on SQLite and PostgreSQL: a rollup over a
hidden child field, a formula through a relation path, formulas over those, and a formula on an
open object are hidden from the same roles in every channel (records, lists, search, export,
history, /meta with its layouts, OpenAPI, errors); a hidden field cannot be told apart from a
field that does not exist; history follows field ids across renames; the compiler warns about
checks that act as oracles for hidden values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.security import auth
from tests.conftest import ROOT, install

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true, searchable: true}
  - {name: tier, type: picklist, options: [gold, silver]}
  - {name: secret, type: integer}
  - {name: secret_tag, type: formula, result_type: text, expression: "concat('tag', text(secret))", searchable: true}
  - {name: deal_margin_total, type: rollup, rollup: {object: deal, via: account, function: sum, field: margin}}
  - {name: big_deals, type: rollup, rollup: {object: deal, via: account, function: count, filter: [[margin, gt, 20]]}}
  - {name: deal_count, type: rollup, rollup: {object: deal, via: account, function: count}}
  - {name: phone, type: text, required_if: "secret > 1000000000000"}
layouts:
  form:
    sections:
      - {label: Main, fields: [name, tier, phone, deal_count]}
      - {label: Confidential, fields: [secret, secret_tag, deal_margin_total]}
  list_views:
    - {name: all_accounts, columns: [name, secret, deal_count], sort: [-deal_margin_total, name]}
    - {name: big_ones, columns: [name], filter: [[big_deals, gt, 0]]}
    - {name: by_tag, columns: [name], filter: [{or: [{field: tier, op: eq, value: gold}, {field: secret_tag, op: eq, value: x}]}]}
    - {name: only_hidden, columns: [secret]}
  related_lists:
    - {object: deal, via: account, columns: [name, margin, account_secret], sort: [-margin, name]}
    - {object: contract, via: account, columns: [name]}
  kanban: {group_by: tier, card_fields: [name, secret_tag], sum_field: deal_margin_total}
permissions:
  rep: {create: true, read: all, edit: all, export: true, fields: {secret: hidden}}
"""
DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true, searchable: true}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: currency}
  - {name: margin, type: percent}
  - {name: account_secret, type: formula, result_type: integer, expression: "account.secret"}
  - {name: doubled, type: formula, result_type: integer, expression: "account_secret * 2"}
  - {name: account_tag, type: formula, result_type: text, expression: "account.secret_tag", searchable: true}
  - {name: stage, type: picklist, options: [open, won], visible_if: "account.secret > 5"}
validation_rules:
  - {name: margin_cap, error_when: "margin > 90", message: "Too generous"}
permissions:
  rep: {create: true, read: all, edit: all, export: true, fields: {margin: hidden}}
"""
MEMO = """
name: memo
fields:
  - {name: body, type: text, searchable: true}
  - {name: deal, type: lookup, target: deal}
  - {name: deal_margin, type: formula, result_type: percent, expression: "deal.margin"}
"""
CONTRACT = """
name: contract
fields:
  - {name: name, type: text}
  - {name: account, type: lookup, target: account}
permissions:
  legal: {read: all}
"""
WORLD = (ACCOUNT, DEAL, MEMO, CONTRACT)
HIDDEN_FROM_REP = {"account": {"secret", "secret_tag", "deal_margin_total", "big_deals"},
                   "deal": {"margin", "account_secret", "doubled", "account_tag"}, "memo": {"deal_margin"}}
HIDDEN_NAMES = set().union(*HIDDEN_FROM_REP.values())
#: the hidden values and those computed from them (none can appear in a UUID or a timestamp)
HIDDEN_VALUES = ("987654321", "1975308642", "73.19", "tag987654321")


@pytest.fixture
def world(runtime, records):
    install(runtime, *WORLD)
    with runtime.db.begin() as conn:
        rep = identity.create_user(conn, "Rep", "rep@x.com", roles=["rep"])
        adm = identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"])
        tokens = {"rep": auth.create_token(conn, rep.id, "t", auth.utcnow()),
                  "admin": auth.create_token(conn, adm.id, "t", auth.utcnow())}
    account = records.create("account", {"name": "Acme", "tier": "gold", "secret": 5}, actor=SYSTEM)
    records.update("account", account["id"], {"secret": 987654321, "phone": "555"}, actor=SYSTEM)  # a history row
    deal = records.create("deal", {"name": "Anvil", "account": account["id"], "amount": 1000, "margin": "73.19"}, actor=SYSTEM)
    memo = records.create("memo", {"body": "hello", "deal": deal["id"]}, actor=SYSTEM)
    ids = {"account": account["id"], "deal": deal["id"], "memo": memo["id"]}
    actors = {"rep": Actor(user_id=rep.id, roles=frozenset({"rep"})),
              "admin": Actor(user_id=adm.id, roles=frozenset({"admin"}))}
    return TestClient(create_app(runtime)), tokens, ids, actors


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bodies_of_every_channel(http, token: str, ids, records, actor) -> list[str]:
    headers = bearer(token)
    texts = [http.get("/api/v1/meta/objects", headers=headers).text,
             http.get("/api/v1/openapi.json", headers=headers).text]
    titles = {"account": "Acme", "deal": "Anvil", "memo": "hello"}
    for name, record_id in ids.items():
        for path, params in ((f"/api/v1/records/{name}", {"limit": 100}), (f"/api/v1/records/{name}/{record_id}", {}),
                             (f"/api/v1/records/{name}", {"search": titles[name]}),
                             (f"/api/v1/records/{name}/export", {}), (f"/api/v1/meta/objects/{name}", {})):
            response = http.get(path, params=params, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert record_id in response.text or "meta" in path, (path, response.text)  # the record is there
            texts.append(response.text)
        texts.append(json.dumps(to_jsonable(records.history(name, record_id, actor=actor))))
    return texts


def test_values_computed_from_hidden_fields_are_hidden_in_every_channel(world, records):
    http, tokens, ids, actors = world
    for text in bodies_of_every_channel(http, tokens["rep"], ids, records, actors["rep"]):
        lowered = text.lower()
        leaked = [n for n in HIDDEN_NAMES if n in lowered] + [v for v in HIDDEN_VALUES if v in text]
        assert not leaked, (leaked, text[:400])
        assert "confidential" not in lowered and "contract" not in lowered  # a hidden section, an unreadable object
    shown = "\n".join(bodies_of_every_channel(http, tokens["admin"], ids, records, actors["admin"]))
    assert all(n in shown for n in HIDDEN_NAMES) and all(v in shown for v in HIDDEN_VALUES)


def test_search_does_not_match_a_hidden_computed_field(world):
    http, tokens, ids, actors = world
    for who, expected in (("rep", []), ("admin", ["Anvil"])):  # deal.account_tag reads account.secret_tag
        found = http.get("/api/v1/records/deal", params={"search": "tag987654321"}, headers=bearer(tokens[who]))
        assert found.status_code == 200 and [r["name"] for r in found.json()["records"]] == expected


def test_layouts_and_conditions_in_meta_name_no_hidden_field(world):
    http, tokens, ids, actors = world
    account = http.get("/api/v1/meta/objects/account", headers=bearer(tokens["rep"])).json()
    assert account["layouts"] == {
        "form": {"sections": [{"label": "Main", "fields": ["name", "tier", "phone", "deal_count"]}]},
        "list_views": [{"name": "all_accounts", "columns": ["name", "deal_count"], "sort": ["name"]}],
        "related_lists": [{"object": "deal", "via": "account", "columns": ["name"], "sort": ["name"]}],
        "kanban": {"group_by": "tier", "card_fields": ["name"]}}
    phone = next(f for f in account["fields"] if f["name"] == "phone")
    assert "required_if" not in phone  # the condition reads a hidden field: not told
    deal = http.get("/api/v1/meta/objects/deal", headers=bearer(tokens["rep"])).json()
    assert "visible_if" not in next(f for f in deal["fields"] if f["name"] == "stage")
    full = http.get("/api/v1/meta/objects/account", headers=bearer(tokens["admin"])).json()
    assert len(full["layouts"]["list_views"]) == 4 and full["layouts"]["kanban"]["sum_field"] == "deal_margin_total"
    assert next(f for f in full["fields"] if f["name"] == "phone")["required_if"] == "secret > 1000000000000"


def check_same(hidden_response, name: str, unknown_response) -> None:
    """The answer about a hidden field is the answer about a field that does not exist."""
    assert hidden_response.status_code == unknown_response.status_code, (hidden_response.text, unknown_response.text)
    assert hidden_response.text.replace(name, "FIELD") == unknown_response.text.replace("nope", "FIELD")


@pytest.mark.parametrize("object_name, name", [("deal", "margin"), ("deal", "account_secret"), ("deal", "doubled"),
                                               ("account", "deal_margin_total"), ("account", "big_deals")])
def test_a_hidden_field_is_indistinguishable_from_one_that_does_not_exist(world, object_name, name):
    http, tokens, ids, actors = world
    headers = bearer(tokens["rep"])
    base = f"/api/v1/records/{object_name}"
    record_id = ids[object_name]
    csv = {**headers, "Content-Type": "text/csv"}

    def both(method: str, path: str, **kwargs):
        def call(field: str):
            params = {k: v.replace("FIELD", field) for k, v in kwargs.get("params", {}).items()}
            params = {k.replace("FIELD", field): v for k, v in params.items()}
            extra = {}
            if "json" in kwargs:
                extra["json"] = json.loads(json.dumps(kwargs["json"]).replace("FIELD", field))
            if "content" in kwargs:
                extra["content"] = kwargs["content"].replace("FIELD", field)
            return getattr(http, method)(path, params=params, headers=kwargs.get("headers", headers), **extra)

        check_same(call(name), name, call("nope"))

    both("get", base, params={"FIELD": "1"})
    both("get", base, params={"filter": '[["FIELD", "eq", 1]]'})
    both("get", base, params={"filter": '{"not": {"field": "FIELD", "op": "gt", "value": 1}}'})
    both("get", base, params={"sort": "FIELD"})
    both("get", base, params={"sort": "name,-FIELD"})
    both("get", base, params={"fields": "name,FIELD"})
    both("get", f"{base}/export", params={"fields": "FIELD"})
    both("get", f"{base}/export", params={"FIELD": "1"})
    both("post", base, json={"name": "x", "FIELD": 1})
    both("patch", f"{base}/{record_id}", json={"FIELD": 1})
    both("post", f"{base}/bulk", json={"records": [{"name": "x", "FIELD": 1}]})
    both("patch", f"{base}/bulk", json={"records": [{"id": record_id, "FIELD": 1}]})
    both("post", f"{base}/import", params={"dry_run": "true"}, headers=csv, content="name,FIELD\r\nx,1\r\n")
    both("post", f"{base}/import", params={"dry_run": "true", "mapping": '{"col": "FIELD"}'}, headers=csv,
         content="name,col\r\nx,1\r\n")
    both("post", f"{base}/import", params={"dry_run": "true", "match": "FIELD"}, headers=csv,
         content="name,FIELD\r\nx,1\r\n")


QUOTE = """
name: quote
title_field: cost
fields:
  - {name: title, type: text, required: true}
  - {name: amount, type: integer}
  - {name: cost, type: integer, default: 0}
  - {name: markup, type: formula, result_type: decimal, expression: "amount / cost"}
validation_rules:
  - {name: cost_cap, error_when: "amount / cost > 1000", message: "Amount is too high"}
permissions:
  rep: {create: true, read: all, edit: all, fields: {cost: hidden}}
"""


def test_errors_about_hidden_values_name_no_field_and_quote_no_expression(runtime, records):
    install(runtime, QUOTE)
    with runtime.db.begin() as conn:
        rep = identity.create_user(conn, "Rep", "rep@x.com", roles=["rep"])
        token = auth.create_token(conn, rep.id, "t", auth.utcnow())
    http = TestClient(create_app(runtime))
    refused = http.post("/api/v1/records/quote", json={"title": "q", "amount": 5}, headers=bearer(token))
    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [(None, "rejected"), (None, "validation_rule")]
    assert "Amount is too high" in refused.text
    for word in ("cost", "markup", "division"):
        assert word not in refused.text.lower()
    for path in ("/api/v1/meta/objects", "/api/v1/meta/objects/quote"):  # not even as the title field
        described = http.get(path, headers=bearer(token))
        assert described.status_code == 200 and "cost" not in described.text and "markup" not in described.text
    with pytest.raises(ValidationFailed) as system_view:  # the engine's own view keeps every detail
        records.create("quote", {"title": "q", "amount": 5}, actor=SYSTEM)
    assert "markup" in str(system_view.value) and "amount / cost > 1000" in str(system_view.value)


OFFER = """
name: offer
fields:
  - {name: name, type: text}
  - {name: margin, type: percent}
  - {name: margin_copy, type: percent, default_expression: "margin"}
  - {name: notes, type: text}
  - {name: extra, type: text}
permissions:
  rep: {read: all, edit: all}
"""
OFFER_RENAMED_AND_HIDDEN = """
name: offer
fields:
  - {name: name, type: text}
  - {id: margin, name: gross_margin, type: percent}
  - {name: margin_copy, type: percent, default_expression: "gross_margin"}
  - {id: notes, name: remarks, type: text}
permissions:
  rep: {read: all, edit: all, fields: {gross_margin: hidden}}
"""


def test_history_follows_field_ids_across_renames_and_hides_what_is_hidden_now(runtime, records):
    install(runtime, OFFER)
    with runtime.db.begin() as conn:
        rep = identity.create_user(conn, "Rep", "rep@x.com", roles=["rep"])
        adm = identity.create_user(conn, "Adm", "adm@x.com", roles=["admin"])
    rep, adm = Actor(user_id=rep.id, roles=frozenset({"rep"})), Actor(user_id=adm.id, roles=frozenset({"admin"}))
    offer = records.create("offer", {"name": "o", "margin": "66.10", "notes": "a", "extra": "e"}, actor=SYSTEM)
    records.update("offer", offer["id"], {"margin": "77.31", "margin_copy": "88.42", "notes": "b", "extra": "f",
                                          "name": "p"}, actor=SYSTEM)
    assert {h["field"] for h in records.history("offer", offer["id"], actor=rep)} == {
        "name", "margin", "margin_copy", "notes", "extra"}
    install(runtime, OFFER_RENAMED_AND_HIDDEN)
    seen = records.history("offer", offer["id"], actor=rep)
    assert {h["field"] for h in seen} == {"name", "remarks"}  # margin_copy is computed from a hidden field
    assert not any(value in json.dumps(to_jsonable(seen)) for value in ("66.1", "77.31", "88.42"))
    assert {h["field"] for h in records.history("offer", offer["id"], actor=adm)} == {
        "name", "gross_margin", "margin_copy", "remarks", "extra"}  # removed fields: admins only


def test_rollups_formulas_and_paths_are_hidden_per_role_at_compile_time(runtime):
    lookup_hidden = DEAL.replace("{margin: hidden}", "{account: hidden}").replace(
        "  - {name: stage", "  - {name: account_name, type: formula, result_type: text, expression: \"account.name\"}\n"
                            "  - {name: stage")
    boss = "  boss: {read: all}\n"
    install(runtime, ACCOUNT + boss, lookup_hidden + boss, MEMO, CONTRACT)
    model = runtime.reload()  # as every server process builds it from the stored revision
    rep = frozenset({"rep"})
    hidden = {name: model.object(name).permissions.for_roles(rep).hidden for name in ("account", "deal", "memo")}
    assert hidden == {"account": {"secret", "secret_tag", "deal_margin_total", "big_deals", "deal_count"},
                      "deal": {"account", "account_secret", "doubled", "account_tag", "account_name"}, "memo": set()}
    memo = model.object("memo").permissions
    assert memo.for_roles(frozenset()).hidden == {"deal_margin"}  # roles that cannot read deals at all
    assert memo.for_roles(frozenset({"legal"})).hidden == {"deal_margin"}
    assert memo.for_roles(frozenset({"legal", "boss"})).hidden == frozenset()  # the widest role decides
    assert not model.object("account").permissions.for_roles(frozenset({"boss"})).hidden


def test_compiler_warns_about_checks_reading_hidden_fields_in_plan_cli_and_admin_api(world, runtime, db_url, tmp_path):
    http, tokens, ids, actors = world
    expected = ["validation rule 'margin_cap' reads margin, hidden from rep",
                "required_if condition 'phone' reads secret, hidden from rep"]
    assert len(runtime.model.warnings) == 2
    for text, warning in zip(expected, sorted(map(str, runtime.model.warnings), key=lambda w: "margin_cap" not in w)):
        assert text in warning
    folder = tmp_path / "meta"
    folder.mkdir()
    for name, text in zip(("account", "deal", "memo", "contract"), WORLD):
        (folder / f"{name}.yaml").write_text(text)
    (folder / "deal.yaml").write_text(DEAL.replace("{name: amount, type: currency}",
                                                   "{name: amount, type: currency, label: Value}"))
    cli = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "plan", str(folder)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "2 warning(s)" in cli.stdout and all(text in cli.stdout for text in expected)
    assert "deal.yaml:" in cli.stdout  # each warning says where
    plan = http.post("/api/v1/admin/metadata/plan", json={"documents": {"deal.yaml": DEAL}},
                     headers=bearer(tokens["admin"]))
    assert plan.status_code == 200, plan.text
    warnings = plan.json()["warnings"]
    assert len(warnings) == 2 and all(any(text in w for w in warnings) for text in expected)


VENDOR = """
name: vendor
fields:
  - {name: name, type: text}
permissions:
  rep: {read: all, delete: all}
"""
INVOICE = """
name: invoice
fields:
  - {name: name, type: text}
  - {name: paid_to, type: lookup, target: vendor, label: Paid to}
permissions:
  rep: {read: all, fields: {paid_to: hidden}}
"""


def test_a_refused_delete_does_not_name_a_lookup_hidden_from_the_actor(runtime, records):
    install(runtime, VENDOR, INVOICE)
    with runtime.db.begin() as conn:
        rep = identity.create_user(conn, "Rep", "rep@x.com", roles=["rep"])
    vendor = records.create("vendor", {"name": "V"}, actor=SYSTEM)
    records.create("invoice", {"name": "I", "paid_to": vendor["id"]}, actor=SYSTEM)
    with pytest.raises(ValidationFailed) as refused:
        records.delete("vendor", vendor["id"], actor=Actor(user_id=rep.id, roles=frozenset({"rep"})))
    assert refused.value.errors[0].code == "restricted" and "paid" not in str(refused.value).lower()
    with pytest.raises(ValidationFailed) as system_view:
        records.delete("vendor", vendor["id"], actor=SYSTEM)
    assert "Paid to" in str(system_view.value)
