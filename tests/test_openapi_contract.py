"""The OpenAPI document as a contract a client can rely on (SQLite and PostgreSQL), against a
live uvicorn server: the document is valid OpenAPI 3.1; every route the app serves, with every
method, is described; what it says about records (fields=, decimals, enums, lookups, hidden
fields, versions) is what the API does; and a client generated from it by openapi-python-client
works for the everyday calls."""

from __future__ import annotations

import csv
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from metacrm.engine.web.assets import STATIC_PREFIX
from tests.live_api import INQUIRY, live_on

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    yield from live_on(request, tmp_path_factory)


def spec_of(live, who: str = "admin") -> dict:
    with live.client(who) as http:
        answer = http.get("/api/v1/openapi.json")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_document_is_valid_openapi_for_every_caller(live):
    for who in ("admin", "rep"):
        document = spec_of(live, who)
        validate(document)
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", document["info"]["version"]), document["info"]["version"]
        assert document["info"]["x-metacrm-revision"] == live.runtime.model.revision


def test_admin_operations_are_described_to_admins_only(live):
    admin, rep = spec_of(live, "admin"), spec_of(live, "rep")
    assert "/api/v1/admin/metadata/apply" in admin["paths"] and "/api/v1/privacy/{object}/{id}/erase" in admin["paths"]
    assert not [p for p in rep["paths"] if p.startswith(("/api/v1/admin", "/api/v1/privacy"))]
    assert "/api/v1/records/inquiry/bulk" in rep["paths"]


def routes_of(live) -> list[tuple[str, str]]:
    """Every (documented path, method) the app serves, with {object} replaced by the objects a
    route applies to (intake: the objects with a public form; rules: those with a manual rule)."""
    model = live.runtime.model
    objects = list(model.objects)
    intake = [o.name for o in model.objects.values() if o.document.get("intake")]
    ruled = [o.name for o in model.objects.values() if any(r.trigger.on == "manual" for r in o.automations)]
    found = []
    for route in live.app.routes:
        if isinstance(route, Mount) and route.path == STATIC_PREFIX:
            continue  # the pages' static files, not an API
        assert isinstance(route, Route), f"{route!r}: describe it in engine/api/spec"
        names = intake if route.path.startswith("/api/v1/intake/") else ruled if "/rules/" in route.path else objects
        paths = [route.path.replace("{object}", n) for n in names] if "{object}" in route.path \
            and not route.path.startswith("/api/v1/privacy/") and "/meta/" not in route.path else [route.path]
        found += [(p, m.lower()) for p in paths for m in route.methods if m != "HEAD"]
    return found


def test_every_route_and_method_the_app_serves_is_described(live):
    document = spec_of(live)
    missing = [(p, m) for p, m in routes_of(live) if m not in document["paths"].get(p, {})]
    assert not missing, f"served but not in the OpenAPI document: {missing}"


def test_every_described_operation_is_served(live):
    served = routes_of(live)
    templates = [(r.path_regex, m.lower()) for r in live.app.routes if isinstance(r, Route) for m in r.methods]
    document = spec_of(live)
    unserved = []
    for path, ops in document["paths"].items():
        for method in ops:
            if (path, method) in served or any(rx.match(path) and m == method for rx, m in templates):
                continue
            unserved.append((method, path))
    assert not unserved, f"described but not served: {unserved}"


def test_record_schemas_say_what_the_api_sends(live):
    document = spec_of(live)
    schemas = document["components"]["schemas"]
    inquiry = schemas["inquiry"]
    assert inquiry["required"] == ["id", "version"]  # fields= returns id and version, and only what it names
    props = inquiry["properties"]
    assert props["id"]["format"] == "uuid" and props["contact_email"]["format"] == "email"
    assert props["asked_on"]["format"] == "date" and props["created_at"]["format"] == "date-time"
    assert props["account"]["x-lookup"] == "account" and props["account"]["format"] == "uuid"
    assert props["stage"]["x-enum-labels"]["zh-TW"] == {"new": "新建", "done": "完成"}
    assert props["stage"]["x-enum-labels"]["en"] == {"new": "New", "done": "Done"}
    budget = props["budget"]
    assert set(budget["type"]) >= {"string", "number"} and budget["x-decimal"] == {"precision": 18, "scale": 2}
    with live.client() as http:
        made = http.post("/api/v1/records/inquiry", json={"subject": "s", "budget": "1234567890123456.78"})
        assert made.status_code == 201, made.text
        assert re.fullmatch(budget["pattern"], made.json()["budget"])  # not exact as a float: sent as text
        page = http.get("/api/v1/records/inquiry", params={"fields": "subject"}).json()
    assert set(page["records"][0]) == {"id", "version", "subject"}
    list_op = document["paths"]["/api/v1/records/inquiry"]["get"]
    names = {p["name"] for p in list_op["parameters"]}
    assert {"filter", "sort", "search", "fields", "limit", "cursor", "view", "subject", "owner", "visits"} <= names
    get_op = document["paths"]["/api/v1/records/inquiry/{id}"]
    assert "If-None-Match" in {p["name"] for p in get_op["get"]["parameters"]}
    assert "If-Match" in {p["name"] for p in get_op["patch"]["parameters"]}
    assert "ETag" in get_op["get"]["responses"]["200"]["headers"]


def test_hidden_fields_are_not_described(live):
    hidden = live.runtime.model.object("inquiry").document
    doc = dict(hidden, permissions={"rep": {"create": True, "read": "all", "edit": "all",
                                            "fields": {"budget": "hidden"}}})
    import yaml

    from metacrm.engine.runtime import find_template
    from metacrm.metamodel.loader import load_documents

    template = find_template("crm_standard")
    live.runtime.apply(live.runtime.plan(list(template.objects) + list(load_documents([("inquiry.yaml",
                                                                                          yaml.safe_dump(doc))]))))
    rep = spec_of(live, "rep")
    assert "budget" not in rep["components"]["schemas"]["inquiry"]["properties"]
    assert "budget" not in {p["name"] for p in rep["paths"]["/api/v1/records/inquiry"]["get"]["parameters"]}
    assert "budget" in spec_of(live, "admin")["components"]["schemas"]["inquiry"]["properties"]
    live.runtime.apply(live.runtime.plan(list(template.objects) + list(load_documents([("inquiry.yaml", INQUIRY)]))))


# -- a generated client ------------------------------------------------------------------------

GENERATOR_CONFIG = Path(__file__).parent / "data" / "openapi-python-client.yaml"
CLIENT = "metacrm_api_client"


def generate_client(live, tmp_path: Path) -> Path:
    """The client package generated from the live document (as an admin sees it, in English),
    built and installed into a directory of its own; returns that directory."""
    with live.client() as http:
        (tmp_path / "openapi.json").write_text(http.get("/api/v1/openapi.json",
                                                        headers={"Accept-Language": "en"}).text, "utf-8")
    made = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path",
                           str(tmp_path / "openapi.json"), "--meta", "setup", "--output-path", str(tmp_path / "client"),
                           "--config", str(GENERATOR_CONFIG), "--fail-on-warning"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "warning" not in (made.stdout + made.stderr).lower(), made.stdout + made.stderr
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(tmp_path / "client")], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    return target


@pytest.fixture
def generated(live, tmp_path):
    """The generated client's modules, imported from where pip installed them."""
    target = generate_client(live, tmp_path)
    forget = lambda: [sys.modules.pop(m) for m in [m for m in sys.modules if m.split(".")[0] == CLIENT]]  # noqa: E731
    forget()
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(CLIENT), target
    finally:
        sys.path.remove(str(target))
        forget()


def test_a_generated_client_works_for_everyday_calls(live, generated):
    package, target = generated
    assert (target / CLIENT / "api" / "inquiry" / "create_inquiry.py").exists()  # installed, not read from the source
    api = lambda name: importlib.import_module(f"{CLIENT}.api.inquiry.{name}")  # noqa: E731
    models = importlib.import_module(f"{CLIENT}.models")
    types = importlib.import_module(f"{CLIENT}.types")
    client = package.AuthenticatedClient(base_url=live.url, token=live.tokens["admin"])
    with client:
        made = api("create_inquiry").sync_detailed(client=client, body=models.InquiryCreate(
            subject="generated", budget="1234567890123456.78", visits=2))
        assert made.status_code == 201, made.content
        record = made.parsed
        assert record.subject == "generated" and record.budget == "1234567890123456.78" and record.version == 1
        tag = made.headers["ETag"]
        assert made.headers["Location"] == f"/api/v1/records/inquiry/{record.id}"

        page = api("list_inquiry").sync(client=client, fields="subject", subject="generated")
        assert [(str(r.id), r.subject, r.version) for r in page.records] == [(str(record.id), "generated", 1)]

        updated = api("update_inquiry").sync_detailed(record.id, client=client, body=models.InquiryUpdate(visits=3),
                                                      if_match=tag)
        assert updated.status_code == 200 and updated.parsed.visits == 3 and updated.parsed.version == 2
        stale = api("update_inquiry").sync_detailed(record.id, client=client, body=models.InquiryUpdate(visits=4),
                                                    if_match=tag)
        assert stale.status_code == 412 and isinstance(stale.parsed, models.Problem)
        assert stale.parsed.status == 412 and stale.parsed.current_version == 2

        bulk = api("bulk_create_inquiry").sync_detailed(client=client, body=models.BulkCreateInquiryBody(
            records=[models.InquiryCreate(subject="bulk 1"), models.InquiryCreate(subject="bulk 2")]))
        assert bulk.status_code == 200 and bulk.parsed.written == 2 and len(bulk.parsed.ids) == 2

        csv_text = b"subject,visits\nimported,5\n,6\n"
        dry = api("import_inquiry").sync_detailed(client=client, body=types.File(payload=io.BytesIO(csv_text)),
                                                  dry_run=True)
        assert dry.status_code == 207 and dry.parsed.dry_run and dry.parsed.created == 1
        assert [e.row for e in dry.parsed.errors] == [3]
        exported = api("export_inquiry").sync_detailed(client=client, fields="subject", sort="subject")
        assert exported.status_code == 200
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8"))))
    with live.client() as http:
        listed = http.get("/api/v1/records/inquiry", params={"sort": "subject", "fields": "subject"}).json()["records"]
        assert http.get("/api/v1/records/inquiry", params={"subject": "imported"}).json()["records"] == []  # dry run
    assert [r[1:] for r in rows] == [["subject"]] + [[r["subject"]] for r in listed]
    assert {"bulk 1", "bulk 2", "generated"} <= {r[1] for r in rows}


def test_a_whole_number_written_with_a_fraction_is_an_integer(live):
    """The document says "integer", and JSON Schema counts 30.0 as one: the API must agree."""
    with live.client() as http:
        made = http.post("/api/v1/auth/tokens", content=b'{"name": "float days", "expires_in_days": 30.0}',
                         headers={"Content-Type": "application/json"})
        assert made.status_code == 201, made.text
        refused = http.post("/api/v1/auth/tokens", json={"name": "half days", "expires_in_days": 1.5})
        assert refused.status_code == 400


def spec_in(live, language: str) -> dict:
    with live.client() as http:
        answer = http.get("/api/v1/openapi.json", headers={"Accept-Language": language})
    assert answer.status_code == 200 and answer.headers["content-language"] == language, answer.text
    return answer.json()


def sentences(document: dict) -> list[str]:
    """Every human sentence of the operations: summaries, parameter and response descriptions."""
    found = [document["info"]["description"]]
    found += [r["description"] for r in document["components"]["responses"].values()]
    for ops in document["paths"].values():
        for op in ops.values():
            found.append(op["summary"])
            found += [p["description"] for p in op.get("parameters", ()) if "description" in p]
            found += [r["description"] for r in op["responses"].values() if "description" in r]
    return found


@pytest.mark.parametrize("language,listing", [("zh-CN", "列出咨询记录"), ("zh-TW", "列出諮詢記錄")])
def test_summaries_are_in_the_callers_language_without_english_left(live, language, listing):
    from tests.test_i18n import english_sentence, has_cjk

    document = spec_in(live, language)
    assert document["paths"]["/api/v1/records/inquiry"]["get"]["summary"] == listing
    half = [s for s in sentences(document) if not has_cjk(s) or english_sentence(s)]
    assert not half, f"{language} sentences with English left: {half[:10]}"
    english = spec_in(live, "en")
    assert english["paths"]["/api/v1/records/inquiry"]["get"]["summary"] == "List Inquiry records"


def test_include_and_view_name_exactly_what_the_server_takes(live):
    paths = spec_of(live)["paths"]
    params = {p["name"]: p for p in paths["/api/v1/records/account/{id}"]["get"]["parameters"]}
    include = params["include"]
    assert include["style"] == "form" and include["explode"] is False
    names = include["schema"]["items"]["enum"]
    assert "contact" in names and "inquiry" in names
    views = next(p for p in paths["/api/v1/records/inquiry"]["get"]["parameters"] if p["name"] == "view")
    assert views["schema"]["enum"] == ["open_inquiries"]
    with live.client() as http:
        account = http.get("/api/v1/records/account", params={"limit": 1}).json()["records"][0]["id"]
        for name in names:  # every name the document offers is one the server resolves
            answer = http.get(f"/api/v1/records/account/{account}", params={"include": name})
            assert answer.status_code == 200 and name in answer.json()["_related"], (name, answer.text)
        both = http.get(f"/api/v1/records/account/{account}", params={"include": ",".join(names[:2])})
        assert set(both.json()["_related"]) == set(names[:2])
        assert http.get(f"/api/v1/records/account/{account}", params={"include": "nothing"}).status_code == 400
        assert http.get("/api/v1/records/inquiry", params={"view": "open_inquiries"}).status_code == 200
        assert http.get("/api/v1/records/inquiry", params={"view": "nothing"}).status_code == 400
    related_less = {p["name"] for p in paths["/api/v1/records/inquiry/{id}"]["get"]["parameters"]}
    assert "include" not in related_less  # inquiry has no child objects: no include= value would do


def test_blank_clears_an_optional_field_and_the_schema_says_so(live):
    import jsonschema

    document = spec_of(live)
    stage = document["components"]["schemas"]["inquiry_create"]["properties"]["stage"]
    for value, valid in (("", True), ("  ", True), (None, True), ("new", True), ("bogus", False)):
        assert jsonschema.Draft202012Validator(stage).is_valid(value) is valid, value
    with live.client() as http:
        for value in ("", "  "):
            made = http.post("/api/v1/records/inquiry", json={"subject": "blank stage", "stage": value})
            assert made.status_code == 201 and made.json()["stage"] is None, made.text
        assert http.post("/api/v1/records/inquiry", json={"subject": "s", "stage": "bogus"}).status_code == 422


def test_damaged_cursors_and_sign_in_text_are_refused_as_documented(live):
    import jsonschema

    paths = spec_of(live)["paths"]
    assert "422" in paths["/api/v1/records/inquiry/{id}/history"]["get"]["responses"]
    assert "422" in paths["/api/v1/notifications"]["get"]["responses"]
    login = paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert not jsonschema.Draft202012Validator(login).is_valid({"email": "a\x00@example.com", "password": "x"})
    with live.client() as http:
        rid = http.post("/api/v1/records/inquiry", json={"subject": "with a history"}).json()["id"]
        damaged = http.get(f"/api/v1/records/inquiry/{rid}/history", params={"cursor": "garbage"})
        assert damaged.status_code == 422 and damaged.json()["errors"][0]["field"] == "cursor"
        assert http.get("/api/v1/notifications", params={"cursor": "garbage"}).status_code == 422
    with live.client() as http:
        refused = http.post("/api/v1/auth/login", json={"email": "a\x00@example.com", "password": "x"})
        assert refused.status_code == 400, refused.text
