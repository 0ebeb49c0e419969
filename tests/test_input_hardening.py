"""No input stalls or crashes a server process (SQLite and PostgreSQL).

Format checks and admin patterns run in linear time; metadata over the documented limits
(size, depth, alias expansion, fields per object, reserved table names) is refused with the
file and line; templates and plugin actions are checked when the metadata is compiled and
rendered within limits; request values a client can get wrong are answered with a 4xx
problem document and change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from textwrap import dedent

import pytest
import sqlalchemy as sa
from jinja2 import TemplateError
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation.tables import outbox
from metacrm.engine.automation.templates import TemplateLimitError, render
from metacrm.engine.errors import AutomationError
from metacrm.engine.errors import RecordError
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.plugins import hookimpl
from metacrm.engine.runtime import Runtime
from metacrm.engine.security import auth
from metacrm.metamodel.compiler import compile_model
from metacrm.metamodel.errors import MetadataError
from tests.conftest import ROOT, documents, install

PERSON = """
name: person
fields:
  - {name: name, type: text, required: true}
  - {name: email, type: email}
  - {name: code, type: text, pattern: "(a+)+$"}
  - {name: visits, type: integer}
  - {name: seen_on, type: date}
  - {name: site, type: url}
  - {name: stage, type: picklist, options: [new, won]}
  - {name: extra, type: json}
permissions:
  viewer: {read: all}
"""
BOUND = 10.0  # seconds: generous; the backtracking checks took minutes on these inputs


@pytest.fixture
def api(runtime):
    install(runtime, PERSON)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"])
        viewer = identity.create_user(conn, "Viewer", "viewer@example.com", roles=["viewer"])
        auth.set_password(conn, admin.id, "correct horse")
        now = auth.utcnow()
        tokens = {"admin": auth.create_token(conn, admin.id, "t", now),
                  "viewer": auth.create_token(conn, viewer.id, "t", now)}
    return TestClient(create_app(runtime), raise_server_exceptions=False), tokens


def h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def assert_problem(response, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json", response.text[:300]
    if status is not None:
        assert response.status_code == status, response.text[:300]


def count(runtime: Runtime, table: str = "person") -> int:
    with runtime.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# -- linear-time checks ----------------------------------------------------------------------


def test_long_emails_and_admin_patterns_are_checked_in_linear_time(api, runtime):
    client, tokens = api
    email = "a@" + "a." * 50_000 + "@"  # 100 KB: the old e-mail regex backtracked quadratically
    started = time.monotonic()
    created = client.post("/api/v1/records/person", json={"name": "x", "email": email}, headers=h(tokens["admin"]))
    assert_problem(created, 422)
    assert created.json()["errors"][0]["code"] == "invalid_email"
    short = email[:30_000] + "@"  # a URL carries 64 KB at most
    listed = client.get("/api/v1/records/person", params={"filter": json.dumps([["email", "eq", short]])},
                        headers=h(tokens["viewer"]))  # a read-only user reaches the same check
    assert_problem(listed, 422)
    assert time.monotonic() - started < BOUND
    started = time.monotonic()
    refused = client.post("/api/v1/records/person", json={"name": "x", "code": "a" * 28 + "!"},
                          headers=h(tokens["admin"]))  # (a+)+$ is exponential for a backtracking engine
    assert_problem(refused, 422)
    assert refused.json()["errors"][0]["code"] == "pattern"
    assert time.monotonic() - started < BOUND
    accepted = client.post("/api/v1/records/person", json={"name": "x", "code": "aaa", "email": "ada@example.com"},
                           headers=h(tokens["admin"]))
    assert accepted.status_code == 201, accepted.text
    assert count(runtime) == 1


@pytest.mark.parametrize("pattern, reason", [(r"(a)\1", "invalid escape sequence"),
                                             ("(?=a)b", "invalid perl operator"),
                                             ("x{1001}", "invalid repetition size")])
def test_patterns_a_linear_engine_cannot_run_are_refused_at_definition(pattern, reason):
    text = PERSON.replace('pattern: "(a+)+$"', f"pattern: {json.dumps(pattern)}")
    with pytest.raises(MetadataError) as info:
        compile_model(documents(text))
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.path) == ("doc0.yaml", 6, "fields[2].pattern")
    assert reason in problem.message and "RE2" in problem.message


# -- metadata limits -------------------------------------------------------------------------

BOMB = dedent("""\
    name: bomb
    fields: [{name: a, type: text}]
    description: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    """) + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
FIELDS = "name: wide\nfields:\n" + "".join(f"  - {{name: f{i}, type: text}}\n" for i in range(600))
TOO_DEEP = "name: deep\nfields: [{name: a, type: text}]\nlayouts: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_BLOCK = "name: deep\nfields: [{name: a, type: text}]\nlayouts:\n" + "".join(
    " " * (i + 1) + f"k{i}:\n" for i in range(100))
LIMITS = [
    (BOMB, 8, "more than 100,000 values"),
    (TOO_DEEP, 3, "nested more than 64 levels"),
    (DEEP_BLOCK, 66, "nested more than 64 levels"),
    ("name: loop\nfields: &f [{name: a, type: text}, *f]\n", 2, "recursive"),
    (FIELDS, 2, "at most 500"),
    ("name: pg_class\nfields: [{name: a, type: text}]\n", 1, "reserves"),
    ("name: sqlite_master\nfields: [{name: a, type: text}]\n", 1, "reserves"),
    ("name: big\nfields: [{name: a, type: integer, max: " + "9" * 5000 + "}]\n", 2, "at most 100 characters"),
    ('name: nul\nlabel: "a\\0b"\nfields: [{name: a, type: text}]\n', 2, "NUL"),
    ('name: half\nlabel: "\\ud800"\nfields: [{name: a, type: text}]\n', 2, "surrogate"),
    ("name: huge\nfields: [{name: a, type: text}]\n" + "#" * (1024 * 1024) + "\n", None, "1 MiB"),
]


@pytest.mark.parametrize("text, line, message", LIMITS, ids=[
    "alias-bomb", "5000-deep", "deep-block", "recursive-alias", "600-fields", "pg_class", "sqlite_master",
    "5000-digits", "nul", "surrogate", "over-1MiB"])
def test_metadata_over_the_limits_is_refused_with_file_and_line(api, runtime, text, line, message):
    client, tokens = api
    revision = runtime.model.revision
    response = client.post("/api/v1/admin/metadata/plan", json={"documents": {"bad.yaml": text}},
                           headers=h(tokens["admin"]))
    assert_problem(response, 422)
    (error,) = response.json()["errors"]
    assert error["file"] == "bad.yaml" and error["line"] == line and message in error["message"], error
    assert runtime.model.revision == revision


def test_the_cli_refuses_an_alias_bomb_with_file_and_line(db_url, tmp_path):
    folder = tmp_path / "changes"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(BOMB)
    (folder / "latin1.yaml").write_bytes("name: caf\xe9\nfields: [{name: a, type: text}]\n".encode("latin-1"))
    result = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "plan", str(folder)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{folder / 'bomb.yaml'}:8: with its aliases expanded" in result.stderr
    assert f"{folder / 'latin1.yaml'}:1: the file is not UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


# -- request values --------------------------------------------------------------------------

SURROGATE = '"\\ud800"'
DIGITS = "9" * 5000


def bad_requests(client, tokens, record_id: str):
    admin, viewer = h(tokens["admin"]), h(tokens["viewer"])
    raw = lambda method, path, body, headers=admin, kind="application/json": client.request(  # noqa: E731
        method, path, content=body.encode(), headers={**headers, "Content-Type": kind})
    filter_ = lambda text, headers=admin: client.get(  # noqa: E731
        "/api/v1/records/person", params={"filter": text}, headers=headers)
    return {
        "surrogate in a value": raw("POST", "/api/v1/records/person", '{"name": %s}' % SURROGATE),
        "surrogate in a key": raw("POST", "/api/v1/records/person", '{%s: "x", "name": "y"}' % SURROGATE),
        "surrogate in a JSON field": raw("PATCH", f"/api/v1/records/person/{record_id}",
                                         '{"extra": ["%s"]}' % "\\udfff"),
        "surrogate in a filter": filter_('[["name", "eq", %s]]' % SURROGATE, viewer),
        "surrogate in a login e-mail": raw("POST", "/api/v1/auth/login", '{"email": %s, "password": "x"}' % SURROGATE,
                                           {}),
        "surrogate in a token name": raw("POST", "/api/v1/auth/tokens", '{"name": %s}' % SURROGATE),
        "surrogate in an erasure reason": raw("POST", f"/api/v1/privacy/person/{record_id}/erase",
                                              '{"reason": %s}' % SURROGATE),
        "NUL in a login e-mail": client.post("/api/v1/auth/login", json={"email": "a\x00@b.c", "password": "x"}),
        "NUL in a token name": client.post("/api/v1/auth/tokens", json={"name": "a\x00b"}, headers=admin),
        "5000 digits in a body": raw("POST", "/api/v1/records/person", '{"name": "x", "visits": %s}' % DIGITS),
        "5000 digits in a filter": filter_('[["visits", "eq", %s]]' % DIGITS),
        "5000 digits in If-Match": client.patch(f"/api/v1/records/person/{record_id}", json={"name": "y"},
                                                headers={**admin, "If-Match": f'"{record_id}.{DIGITS}"'}),
        "a superscript digit in If-Match": client.patch(f"/api/v1/records/person/{record_id}", json={"name": "y"},
                                                        headers=[*admin.items(), ("If-Match", b'"\xb2"')]),
        "NaN in a body": raw("POST", "/api/v1/records/person", '{"name": "x", "visits": NaN}'),
        "1e999 in a JSON field": raw("POST", "/api/v1/records/person", '{"name": "x", "extra": [1e999]}'),
        "last_n_days past the calendar": filter_(json.dumps([["seen_on", "last_n_days", 10**9]])),
        "next_n_days of 10 digits": filter_(json.dumps([["seen_on", "next_n_days", "9999999999"]])),
        "approval id 2**63": client.post(f"/api/v1/approvals/{2**63}/approve", json={}, headers=admin),
        "approval id 2**70": client.post(f"/api/v1/approvals/{2**70}/reject", json={}, headers=admin),
        "token id that is not an id": client.delete("/api/v1/auth/tokens/a%00b", headers=admin),
        "a cursor nested 5000 deep": client.get("/api/v1/records/person", headers=admin, params={
            "cursor": __import__("base64").urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()}),
        "an unclosed IPv6 URL": client.post("/api/v1/records/person", json={"name": "x", "site": "http://[::1"},
                                            headers=admin),
        "1e999999999 for an integer": raw("POST", "/api/v1/records/person", '{"name": "x", "visits": "1e999999999"}'),
        "JSON nested 5000 deep": raw("POST", "/api/v1/records/person", "[" * 5000 + "]" * 5000),
    }


def test_bad_request_values_get_4xx_problems_and_change_nothing(api, runtime, records):
    client, tokens = api
    record = records.create("person", {"name": "Ada"}, actor=Actor(system=True))
    answers = bad_requests(client, tokens, record["id"])
    wrong = {name: (r.status_code, r.headers.get("content-type"), r.text[:200]) for name, r in answers.items()
             if not (400 <= r.status_code < 500 and r.headers.get("content-type") == "application/problem+json")}
    assert not wrong, wrong
    assert records.get("person", record["id"], actor=SYSTEM)["name"] == "Ada" and count(runtime) == 1


def test_a_session_request_with_a_latin1_csrf_header_is_refused(api):
    client, _ = api
    signed_in = client.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": "correct horse"})
    assert signed_in.status_code == 200, signed_in.text
    response = client.post("/api/v1/records/person", json={"name": "x"}, headers=[("X-CSRF-Token", b"caf\xe9")])
    assert_problem(response, 403)


def test_a_csv_version_cell_of_5000_digits_is_a_row_error(api, records):
    client, tokens = api
    record = records.create("person", {"name": "Ada"}, actor=Actor(system=True))
    response = client.post("/api/v1/records/person/import?match=id", content=f"id,name,version\n{record['id']},Bo,"
                           f"{DIGITS}\n".encode(), headers=h(tokens["admin"], **{"Content-Type": "text/csv"}))
    assert response.status_code == 207, response.text
    assert response.json()["errors"][0]["errors"][0]["field"] == "version"
    assert records.get("person", record["id"], actor=SYSTEM)["name"] == "Ada"


# -- templates -------------------------------------------------------------------------------

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: stage, type: picklist, options: [new, won]}
  - {name: owner_email, type: email}
automations:
  - name: tell
    trigger: {on: saved}
    actions:
      - email: {to: [boss@example.com], subject: "SUBJECT", body: "{{ previous.stage }} -> {{ record.stage }}"}
"""


@pytest.mark.parametrize("subject, message", [
    ("{{ record.nmae }}", "record.nmae: there is no field 'nmae' (template line 1)"),
    ("{{ previous.stagee }}", "previous.stagee: there is no field 'stagee'"),
    ("{{ reocrd.name }}", "unknown name 'reocrd'"),
    ("ok\n{{ record.name|center(9) }}", "there is no filter 'center' in templates"),
    ("{% include 'x.html' %}", "cannot load other templates"),
    ("{{ record.stage.label }}", "record.stage is a picklist; it has no 'label'"),
    ("{{ record.owner.name }}", "record.owner is the id of the related record"),
    ("{% for x in [1] recursive %}{% endfor %}", "recursive loops"),
    ("{{ record.name", "unexpected end of template"),
])
def test_template_mistakes_are_metadata_errors_with_file_line_and_rule(subject, message):
    with pytest.raises(MetadataError) as info:
        compile_model(documents(DEAL.replace("SUBJECT", subject.replace("\n", "\\n"))))
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.path) == ("doc0.yaml", 11, "automations[0].actions[0].email.subject")
    assert message in problem.message and problem.message.startswith("template error in rule 'tell': "), problem.message


def test_previous_is_blank_on_create_in_a_rule_that_also_fires_on_update(runtime, records):
    install(runtime, DEAL.replace("SUBJECT", "{{ record.name }} was {{ previous.name or 'new' }}"))
    deal = records.create("deal", {"name": "Ada", "stage": "new"}, actor=Actor(system=True))
    records.update("deal", deal["id"], {"name": "Bob", "stage": "won"}, actor=Actor(system=True))
    with runtime.db.engine.connect() as conn:
        payloads = [json.loads(p) if isinstance(p, str) else p
                    for p in conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars()]
    assert [(p["subject"], p["body"]) for p in payloads] == [("Ada was new", " -> new"), ("Bob was Ada", "new -> won")]


def test_a_runaway_template_fails_its_write_instead_of_stalling(runtime, records):
    loops = "{% for a in record.name %}{% for b in record.name %}{% for c in record.name %}x" \
            "{% endfor %}{% endfor %}{% endfor %}"
    install(runtime, DEAL.replace("SUBJECT", "hi").replace("{{ previous.stage }} -> {{ record.stage }}", loops))
    with pytest.raises((RecordError, AutomationError)) as info:
        records.create("deal", {"name": "n" * 300}, actor=Actor(system=True))  # 27 million iterations
    assert "more than 100,000 steps" in str(info.value)
    assert count(runtime, "deal") == 0
    assert records.create("deal", {"name": "ab"}, actor=Actor(system=True))  # 8 iterations are fine


@pytest.mark.parametrize("source", [
    "{{ 'x' * 10**9 }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '%.2f'|format(1) ~ '%999999999s'|format('x') }}",
    "{{ record.name.replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') }}",
    "{{ record.name|replace('a', record.name) }}",
    "{% set b = record.name ~ record.name %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}{{ (e ~ e)|length }}",
    "{% macro twice(s, n) %}{{ twice(s ~ s, n - 1) if n else s|length }}{% endmacro %}{{ twice('x', 40) }}",
    "{% macro again() %}{{ again() }}{% endmacro %}{{ again() }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ ([record.name] * 1000)|join(record.name) }}",
    "{{ 2 ** 100000 }}",
])
def test_rendering_stops_at_the_limits(source):
    with pytest.raises(TemplateLimitError):
        render(source, {"record": {"name": "a" * 100_000}, "previous": {}, "object": "deal", "label": "Deal"})


@pytest.mark.parametrize("source", ["{{ record.name.format(1) }}", "{{ lipsum(10**6) }}",
                                    "{% set ns = namespace(s='x') %}", "{{ ''.center(10**9) }}"])
def test_growing_operations_are_not_available_in_templates(source):
    with pytest.raises(TemplateError):
        render(source, {"record": {"name": "a"}, "previous": {}, "object": "deal", "label": "Deal"})


# -- plugin actions --------------------------------------------------------------------------


PLUGGED = DEAL.replace("      - email: {to: [boss@example.com], subject: \"SUBJECT\", body: \"{{ previous.stage }} "
                       "-> {{ record.stage }}\"}", "      - plugin: {action: stamp_it, params: {}}")


class Stamp:
    @hookimpl
    def metacrm_actions(self):
        return {"stamp_it": lambda context, params: None}


def test_an_unknown_plugin_action_is_refused_when_planning(runtime):
    with pytest.raises(MetadataError) as info:
        install(runtime, PLUGGED)
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (11, "automations[0].actions[0].plugin.action")
    assert "no plugin provides the action 'stamp_it'" in problem.message
    assert "deal" not in runtime.model


def test_a_plugin_removed_after_apply_does_not_stop_the_server_from_starting(runtime, records, db_url):
    plugin = Stamp()
    runtime.plugins.register(plugin)
    try:
        install(runtime, PLUGGED)
    finally:
        runtime.plugins.unregister(plugin)
    reopened = Runtime.open(db_url)  # a stored revision compiles; the rule fails when it runs
    try:
        assert "deal" in reopened.model
    finally:
        reopened.close()
    with pytest.raises(RecordError) as info:
        records.create("deal", {"name": "Ada"}, actor=Actor(system=True))
    assert "no plugin provides the action 'stamp_it'" in str(info.value)
