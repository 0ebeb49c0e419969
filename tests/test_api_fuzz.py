"""Every route of the REST API, fed hostile values by Hypothesis: never a 5xx, always problem+json.

The schemathesis test covers the record operations the OpenAPI document describes; this one
covers every route the application has (auth, tokens, bulk, CSV import and export, rules,
approvals, intake, admin metadata and audit, privacy, meta, the documents), with values a
client can send but should not: lone surrogates, NUL bytes, numbers of thousands of digits,
JSON nested thousands deep, invalid UTF-8, 1 MiB strings, ids past 2^63, latin-1 bytes in
headers, garbage cookies and tokens. Each answer must be below 500, and every 4xx must be an
application/problem+json document. The crm_standard template and its sample data are
installed, plus a small object with a public intake and a manual rule, on SQLite and on
PostgreSQL. Hypothesis runs derandomized with a fixed number of examples per route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query
from metacrm.engine.runtime import find_template
from metacrm.engine.sample_data import load_sample_data
from metacrm.engine.security import auth
from metacrm.metamodel.loader import load_documents

EXAMPLES = 25  # per route and method: ~27 x 25 = 675 requests per database
HYPOTHESIS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                             HealthCheck.data_too_large])

INQUIRY = """
name: inquiry
fields:
  - {name: subject, type: text, required: true}
  - {name: contact_email, type: email}
  - {name: visits, type: integer}
  - {name: asked_on, type: date}
intake: {fields: [subject, contact_email, visits, asked_on]}
automations:
  - name: escalate
    trigger: {on: manual}
    actions: [{set: {visits: "1"}}]
  - name: tell
    trigger: {on: saved}
    actions: [{email: {to: [boss@example.com], subject: "{{ record.subject }}", body: "{{ previous.subject }}"}}]
"""

BIG_DIGITS = "9" * 5000
NASTY_TEXT = [
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", BIG_DIGITS, "-" + BIG_DIGITS, str(2**63), str(2**64),
    "-1", "0", "1e999999999", "NaN", "Infinity", "\u00b2", "\u0661\u0662", "\U0001f600", "' OR '1'='1",
    "../../etc/passwd", "%00", "a" * 70_000, "\n\r\t", "null", "[]", "{}", "<script>", "\u202e", "{{ 7*7 }}",
    "a@" + "a." * 5000 + "@", "http://[::1", "0001-01-01", "9999-12-31T23:59:59-01:00", "2026-02-30",
    "00000000-0000-0000-0000-000000000000", "pg_class", "sqlite_master",
]
RAW_BODIES = [
    b'{"name": "\\ud800"}', b'{"\\udfff": 1}', ('{"a": %s}' % BIG_DIGITS).encode(), b"[" * 5000 + b"]" * 5000,
    b'{"a": NaN}', b'{"a": -Infinity}', b"{", b"", b"null", b"\xff\xfe\x00", b'{"records": "x"}',
    b'{"ids": [' + b'"x",' * 600 + b'"y"]}', ('{"a": "%s"}' % ("b" * (1 << 20))).encode(), b'{"a": 1e999999}',
]
HOSTILE_YAML = [
    "name: bomb\nfields: [{name: a, type: text}]\na: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"b{i}: &b{i} [{', '.join([('*a' if i == 0 else f'*b{i - 1}')] * 9)}]\n" for i in range(8)),
    "name: deep\nfields: " + "[" * 5000 + "]" * 5000,
    "name: pg_class\nfields: [{name: a, type: text}]\n",
    "name: wide\nfields:\n" + "".join(f"  - {{name: f{i}, type: text}}\n" for i in range(600)),
    "name: num\nfields: [{name: a, type: integer, max: " + BIG_DIGITS + "}]\n",
    'name: half\nlabel: "\\ud800"\nfields: [{name: a, type: text}]\n',
    "name: bad_tpl\nfields: [{name: a, type: text}]\nautomations:\n  - name: r\n    trigger: {on: created}\n"
    "    actions: [{email: {to: [x@y.z], subject: '{{ record.nmae }}', body: x}}]\n",
    "name: fuzzed\nfields: [{name: a, type: text, pattern: '(a)\\1'}]\n",
    "\t\x00", "",
]

texts = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=12))
numbers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([2**63, -(2**63) - 1, 0, -1]),
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, texts),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=6)


@dataclass
class Call:
    method: str
    path: str  # percent-encoded
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes | None = None


@dataclass
class Target:
    """What the strategies draw real names from."""

    objects: list[str]
    fields: list[str]
    ids: list[str]
    admin: str
    viewer: str
    session: str = ""


def encoded(text: str) -> str:
    """Percent-encoded UTF-8 (lone surrogates too), at most 4 KB of it: a URL carries 64 KB at most."""
    return quote(text.encode("utf-8", "surrogatepass")[:4096], safe="")


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: surrogates travel as \\ud800 escapes


def header_value(text: str) -> bytes:
    """Header bytes as a client may send them (latin-1), without the bytes HTTP cannot carry."""
    raw = text.encode("utf-8", "surrogatepass")[:200]
    return bytes(b for b in raw if b >= 0x20 and b != 0x7f) or b"x"


def strategies(target: Target):
    objects = st.one_of(st.sampled_from(target.objects), texts)
    ids = st.one_of(st.sampled_from(target.ids), texts, st.sampled_from([str(2**63), str(2**70), "-5"]))
    record = st.dictionaries(st.one_of(st.sampled_from(target.fields), texts), json_values, max_size=4)
    body = st.one_of(record.map(as_json), json_values.map(as_json), st.sampled_from(RAW_BODIES))
    filters = st.one_of(
        st.tuples(st.sampled_from(target.fields), st.sampled_from(
            ["eq", "ne", "lt", "in", "between", "contains", "last_n_days", "next_n_days", "is_null", "bogus"]),
            json_values).map(lambda c: json.dumps([list(c)])),
        st.sampled_from(['[["visits", "eq", %s]]' % BIG_DIGITS, '[["subject", "eq", "\\ud800"]]', "[" * 3000,
                         json.dumps([["asked_on", "last_n_days", 10**9]]), "{", '{"not": ' * 40 + "[]" + "}" * 40]),
        texts)
    list_query = st.lists(st.one_of(
        st.tuples(st.just("filter"), filters), st.tuples(st.sampled_from(["sort", "search", "fields", "cursor"]), texts),
        st.tuples(st.just("view"), st.one_of(st.sampled_from(["all", "open", "mine", "key_accounts"]), texts)),
        st.tuples(st.sampled_from(["owner", "created_by"]), st.sampled_from(["me", "current_user()", "ME"])),
        st.tuples(st.just("limit"), st.one_of(texts, numbers.map(str))),
        st.tuples(st.one_of(st.sampled_from(target.fields), texts), texts)), max_size=3)
    auth_headers = st.one_of(
        st.just([("Authorization", f"Bearer {target.admin}".encode())]),
        st.just([("Authorization", f"Bearer {target.viewer}".encode())]),
        texts.map(lambda t: [("Authorization", b"Bearer " + header_value(t))]),
        texts.map(lambda t: [("Cookie", b"metacrm_session=" + header_value(t)), ("X-CSRF-Token", header_value(t))]),
        texts.map(lambda t: [("Cookie", f"metacrm_session={target.session}".encode()),
                             ("X-CSRF-Token", header_value(t))]),
        st.just([]))
    extra_headers = st.lists(st.tuples(
        st.sampled_from(["If-Match", "If-None-Match", "Accept-Language", "Content-Length"]),
        st.one_of(texts, st.sampled_from([BIG_DIGITS, '"x.' + BIG_DIGITS + '"', "\u00b2", "W/\"1\""]))
        .map(header_value)), max_size=2)
    json_kind = st.sampled_from([b"application/json", b"application/merge-patch+json", b"text/plain"])

    def call(method: str, path: str, query=st.just([]), body_=None, kind=json_kind, authorised=auth_headers):
        def build(parts) -> Call:
            path_, query_, auth_, extra, body_value, kind_ = parts
            headers = [*auth_, *extra] + ([("Content-Type", kind_)] if body_value is not None else [])
            return Call(method, path_, query_, headers, body_value)

        return st.tuples(path, query, authorised, extra_headers, body_ if body_ is not None else st.none(),
                         kind).map(build)

    def path(template: str, **parts) -> st.SearchStrategy[str]:
        names = sorted(parts)
        return st.tuples(*(parts[n] for n in names)).map(
            lambda values: template.format(**{n: encoded(v) for n, v in zip(names, values)}))

    obj_path = lambda suffix="": path("/api/v1/records/{object}" + suffix, object=objects)  # noqa: E731
    one = lambda suffix="": path("/api/v1/records/{object}/{id}" + suffix, object=objects, id=ids)  # noqa: E731
    documents = st.dictionaries(st.one_of(st.just("fuzz.yaml"), texts), st.one_of(st.sampled_from(HOSTILE_YAML),
                                                                                  texts), max_size=2)
    plan_body = st.one_of(st.fixed_dictionaries({"documents": documents}, optional={
        "purge": json_values, "base_revision": json_values}).map(as_json), body)
    csv_kind = st.sampled_from([b"text/csv", b"text/csv; charset=latin-1", b"application/json"])
    csv_body = st.lists(st.lists(st.one_of(st.sampled_from(target.fields + ["id", "version"]), texts), min_size=1,
                                 max_size=4), min_size=1, max_size=4).map(
        lambda rows: "\n".join(",".join(json.dumps(c) if "," in c else c for c in row) for row in rows)
        .encode("utf-8", "surrogatepass"))
    import_query = st.lists(st.tuples(st.sampled_from(["mapping", "match", "dry_run", "other"]),
                                      st.one_of(texts, st.just('{"a": "subject"}'))), max_size=2)
    credentials = st.fixed_dictionaries({"email": texts, "password": texts}).map(as_json)
    paging_query = st.lists(st.tuples(st.sampled_from(["limit", "cursor", "other"]),
                                      st.one_of(texts, numbers.map(str))), max_size=2)
    return {
        ("/api/v1/auth/login", "POST"): call("POST", st.just("/api/v1/auth/login"), body_=st.one_of(credentials, body),
                                              authorised=st.just([])),
        ("/api/v1/auth/logout", "POST"): call("POST", st.just("/api/v1/auth/logout")),
        ("/api/v1/auth/tokens", "POST"): call("POST", st.just("/api/v1/auth/tokens"), body_=st.one_of(
            st.fixed_dictionaries({"name": texts}, optional={"expires_in_days": json_values}).map(as_json), body)),
        ("/api/v1/auth/tokens", "GET"): call("GET", st.just("/api/v1/auth/tokens")),
        ("/api/v1/auth/tokens/{id}", "DELETE"): call("DELETE", path("/api/v1/auth/tokens/{id}", id=ids)),
        ("/api/v1/meta/objects", "GET"): call("GET", st.just("/api/v1/meta/objects")),
        ("/api/v1/meta/objects/{object}", "GET"): call("GET", path("/api/v1/meta/objects/{object}", object=objects)),
        ("/api/v1/records/{object}", "GET"): call("GET", obj_path(), list_query),
        ("/api/v1/records/{object}", "POST"): call("POST", obj_path(), body_=body),
        ("/api/v1/records/{object}/bulk", "POST"): call("POST", obj_path("/bulk"), body_=st.one_of(
            st.fixed_dictionaries({"records": st.lists(record, max_size=3)}, optional={"all_or_none": json_values})
            .map(as_json), body)),
        ("/api/v1/records/{object}/bulk", "PATCH"): call("PATCH", obj_path("/bulk"), body_=st.one_of(
            st.fixed_dictionaries({"records": st.lists(st.tuples(ids, record).map(lambda p: {"id": p[0], **p[1]}),
                                                       max_size=3)}).map(as_json), body)),
        ("/api/v1/records/{object}/import", "POST"): call("POST", obj_path("/import"), import_query,
                                                          body_=st.one_of(csv_body, st.sampled_from(RAW_BODIES)),
                                                          kind=csv_kind),
        ("/api/v1/records/{object}/export", "GET"): call("GET", obj_path("/export"), list_query),
        ("/api/v1/records/{object}/rules/{rule}", "POST"): call(
            "POST", path("/api/v1/records/{object}/rules/{rule}", object=objects,
                         rule=st.one_of(st.just("escalate"), texts)),
            body_=st.one_of(st.fixed_dictionaries({"ids": st.lists(ids, max_size=3)}).map(as_json), body)),
        ("/api/v1/records/{object}/{id}/approvals", "POST"): call("POST", one("/approvals"), body_=st.one_of(
            st.fixed_dictionaries({"process": st.one_of(st.just("discount_approval"), texts),
                                   "comment": json_values}).map(as_json), body)),
        ("/api/v1/records/{object}/{id}/approvals", "GET"): call("GET", one("/approvals")),
        ("/api/v1/approvals/{id}/{decision}", "POST"): call(
            "POST", path("/api/v1/approvals/{id}/{decision}", id=st.one_of(ids, numbers.map(str)),
                         decision=st.one_of(st.sampled_from(["approve", "reject", "recall"]), texts)), body_=body),
        ("/api/v1/intake/{object}", "POST"): call("POST", path("/api/v1/intake/{object}", object=st.one_of(
            st.just("inquiry"), objects)), body_=body, authorised=st.just([])),
        ("/api/v1/records/{object}/{id}/shares", "GET"): call("GET", one("/shares")),
        ("/api/v1/records/{object}/{id}/shares", "POST"): call("POST", one("/shares"), body_=st.one_of(
            st.fixed_dictionaries({}, optional={"user_id": st.one_of(ids, json_values), "group": json_values,
                                                "access": st.one_of(st.sampled_from(["read", "edit"]), json_values)})
            .map(as_json), body)),
        ("/api/v1/records/{object}/{id}/shares", "DELETE"): call("DELETE", one("/shares"), st.lists(st.tuples(
            st.sampled_from(["user_id", "group", "other"]), st.one_of(ids, texts)), max_size=2)),
        ("/api/v1/records/{object}/{id}", "GET"): call("GET", one(), st.lists(st.tuples(
            st.sampled_from(["include", "fields", "expand"]),
            st.one_of(st.sampled_from(["contact", "opportunity,ticket", "contact.account", ""]), texts)), max_size=2)),
        ("/api/v1/records/{object}/{id}/history", "GET"): call("GET", one("/history"), paging_query),
        ("/api/v1/me", "GET"): call("GET", st.just("/api/v1/me")),
        ("/api/v1/notifications", "GET"): call("GET", st.just("/api/v1/notifications"), st.lists(st.tuples(
            st.sampled_from(["unread", "limit", "cursor", "other"]),
            st.one_of(st.sampled_from(["true", "false", str(2**63), "-1"]), texts, numbers.map(str))), max_size=3)),
        ("/api/v1/notifications/unread-count", "GET"): call("GET", st.just("/api/v1/notifications/unread-count")),
        ("/api/v1/notifications/read-all", "POST"): call("POST", st.just("/api/v1/notifications/read-all")),
        ("/api/v1/notifications/{id}/read", "POST"): call("POST", path(
            "/api/v1/notifications/{id}/read", id=st.one_of(ids, numbers.map(str)))),
        ("/api/v1/records/{object}/{id}", "PATCH"): call("PATCH", one(), body_=body),
        ("/api/v1/records/{object}/{id}", "DELETE"): call("DELETE", one()),
        ("/api/v1/admin/metadata/plan", "POST"): call("POST", st.just("/api/v1/admin/metadata/plan"), body_=plan_body),
        ("/api/v1/admin/metadata/apply", "POST"): call("POST", st.just("/api/v1/admin/metadata/apply"),
                                                        body_=plan_body),
        ("/api/v1/admin/audit", "GET"): call("GET", st.just("/api/v1/admin/audit"), st.lists(st.tuples(
            st.sampled_from(["event", "limit", "other"]), st.one_of(texts, numbers.map(str))), max_size=2)),
        ("/api/v1/privacy/{object}/{id}/export", "GET"): call("GET", path("/api/v1/privacy/{object}/{id}/export",
                                                                          object=objects, id=ids)),
        ("/api/v1/privacy/{object}/{id}/erase", "POST"): call(
            "POST", path("/api/v1/privacy/{object}/{id}/erase", object=objects, id=ids),
            body_=st.one_of(st.fixed_dictionaries({"reason": json_values}).map(as_json), body)),
        ("/api/v1/openapi.json", "GET"): call("GET", st.just("/api/v1/openapi.json")),
        ("/api/v1/docs", "GET"): call("GET", st.just("/api/v1/docs")),
    }


def send(client: TestClient, call: Call):
    url = call.path
    if call.query:
        url += "?" + "&".join(f"{encoded(k)}={encoded(v)}" for k, v in call.query)
    return client.request(call.method, url, headers=call.headers, content=call.body)


@pytest.fixture
def target_and_client(runtime, records):
    template = find_template("crm_standard")
    runtime.apply(runtime.plan([*template.objects, *load_documents([("inquiry.yaml", INQUIRY)])]))
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        viewer = identity.create_user(conn, "Viewer", "viewer@example.com", roles=["viewer"])
        auth.set_password(conn, admin.id, "correct horse")
        tokens = [auth.create_token(conn, user.id, "fuzz", auth.utcnow()) for user in (admin, viewer)]
    load_sample_data(records, template.sample_data, Actor(user_id=admin.id, roles=frozenset({"admin"})))
    inquiry = records.create("inquiry", {"subject": "Hello"}, actor=Actor(system=True))
    ids = [inquiry["id"]] + [r["id"] for name in ("account", "contact", "opportunity")
                             for r in records.list(name, Query(limit=3), actor=SYSTEM).records]
    fields = sorted({f for obj in runtime.model.objects.values() for f in obj.field_names})
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    signed_in = client.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": "correct horse"})
    session = signed_in.cookies["metacrm_session"]
    client.cookies.clear()  # sent only where a strategy says so
    return Target(sorted(runtime.model.objects), fields, ids, *tokens, session), client


def routes_of(app) -> set[tuple[str, str]]:
    return {(route.path, method) for route in app.routes if isinstance(route, Route)
            for method in route.methods if method != "HEAD"}


def test_every_route_answers_hostile_input_without_a_server_error(target_and_client):
    target, client = target_and_client
    plans = strategies(target)
    assert set(plans) == routes_of(client.app), "every route of the application is fuzzed"
    failures: list[str] = []
    for (route, method), strategy in sorted(plans.items()):
        @HYPOTHESIS
        @given(call=strategy)
        def check(call: Call) -> None:
            response = send(client, call)
            shown = f"{call.method} {call.path[:120]} query={str(call.query)[:120]} body={(call.body or b'')[:120]!r}"
            assert response.status_code < 500, f"{response.status_code} for {shown}: {response.text[:300]}"
            if response.status_code >= 400:
                assert response.headers.get("content-type") == "application/problem+json", \
                    f"{response.status_code} without problem+json for {shown}"

        try:
            check()
        except AssertionError as exc:  # go on: report every route
            failures.append(f"--- {method} {route}\n{str(exc).splitlines()[0][:600]}")
    assert not failures, f"{len(failures)} route(s) failed:\n" + "\n".join(failures)
