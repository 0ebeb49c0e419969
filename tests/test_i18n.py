"""Every message a user sees, in their language: the catalogue is complete for zh-CN and zh-TW,
real problem documents come back fully translated (SQLite and PostgreSQL), Accept-Language is
negotiated with quality values, and the CLI speaks METACRM_LANGUAGE."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from metacrm.engine import i18n
from metacrm.engine.api import create_app
from metacrm.engine import identity
from metacrm.engine.security import auth
from tests.conftest import install

TRANSLATED = ("zh-CN", "zh-TW")
DEAL = """
name: deal
label: {en: Deal, zh-CN: 合同, zh-TW: 合約}
fields:
  - {name: name, type: text, required: true, label: {en: Name, zh-CN: 名称, zh-TW: 名稱}}
  - {name: code, type: text, unique: true, label: {en: Code, zh-CN: 编号, zh-TW: 編號}}
  - {name: amount, type: currency, scale: 2, label: {en: Contract amount, zh-CN: 合同金额, zh-TW: 合約金額}}
layouts:
  form:
    sections:
      - label: {en: Deal Information, zh-CN: 合同信息, zh-TW: 合約資訊}
        fields: [name, code, amount]
"""


def english_sentence(text: str) -> str | None:
    """A run of three or more English words left in a translated text, or None. Values the
    message quotes ('name'), `commands`, {json} and <placeholders> are not sentences."""
    stripped = re.sub(r"'[^']*'|`[^`]*`|\{[^}]*\}|<[^>]*>|\"[^\"]*\"", " ", text)
    found = re.search(r"[A-Za-z]{2,}(?: +[A-Za-z]{2,}){2,}", stripped)
    return found.group(0) if found else None


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# -- the catalogue ---------------------------------------------------------------------------

def test_every_message_id_is_translated_in_both_chinese():
    catalogue = i18n.shipped()
    assert len(catalogue.ids) > 150
    for msgid in catalogue.ids:
        for language in TRANSLATED:
            text = catalogue.entries[msgid].get(language)
            assert text, f"{msgid!r} has no {language} translation"
            assert english_sentence(text) is None, f"{language} of {msgid!r} keeps English: {text!r}"
            placeholders = lambda s: sorted(re.findall(r"(?<!\{)\{(\w+)\}", s))  # noqa: E731
            assert placeholders(text) == placeholders(msgid), f"{language} of {msgid!r} changes its values"


def test_record_engine_messages_are_translated_too():
    """The record engine's coded field messages (engine/records/errors.py) meet the same bar."""
    from metacrm.engine.errors import MESSAGES

    for code, texts in MESSAGES.items():
        for language in TRANSLATED:
            assert texts.get(language) and english_sentence(texts[language]) is None, (code, language)


def test_traditional_is_not_simplified():
    catalogue = i18n.shipped()
    differing = [m for m in catalogue.ids if catalogue.entries[m]["zh-CN"] != catalogue.entries[m]["zh-TW"]]
    assert len(differing) > len(catalogue.ids) * 0.8


@pytest.mark.parametrize("header,stored,expected", [
    ("fr;q=0.1, zh-CN;q=0.9", None, "zh-CN"),
    ("zh-CN;q=0.2, zh-TW;q=0.8", "en", "zh-TW"),
    ("zh-HK", None, "zh-TW"), ("zh-Hant", None, "zh-TW"), ("zh-MO", None, "zh-TW"),
    ("zh", None, "zh-CN"), ("zh-Hans", None, "zh-CN"), ("zh-SG", None, "zh-CN"),
    ("en-GB,zh;q=0.5", "zh-TW", "en"),
    ("fr, de;q=0.5", "zh-TW", "zh-TW"),  # nothing supported: the user's stored language
    ("fr", None, "en"), ("", None, "en"), ("zh-TW;q=0, en", None, "en"),  # q=0: not acceptable
    ("zh-CN;q=abc, zh-TW", None, "zh-TW"), ("*", None, "en"), ("x" * 5000, "zh-CN", "zh-CN"),
])
def test_accept_language_negotiation(header, stored, expected):
    assert i18n.negotiate(header, stored) == expected


def test_translate_by_id_and_parameters():
    assert i18n.translate("unknown object '{name}'", "zh-TW", name="deal") == "未知物件 'deal'"
    assert i18n.translate("unknown object '{name}'", "en", name="deal") == "unknown object 'deal'"
    assert i18n.localize("the body is not valid JSON: Expecting value (line 1, column 2)", "zh-CN") == \
        "请求体不是有效的 JSON：此处应为一个值（第 1 行，第 2 列）"
    assert i18n.LANGUAGES == ("en", "zh-CN", "zh-TW")


def test_values_stay_as_sent():
    """A value with spaces is taken whole, and a value is never reworded as if it were a message."""
    assert i18n.localize("amount: 'abc def' must be a number", "zh-CN") == "amount：'abc def' 必须是数字"
    assert i18n.localize("{'a': 1} is not valid here: expected [x]", "zh-TW") == "{'a': 1} 在此處無效：應為 [x]"
    assert i18n.localize("unknown object 'must be text'", "zh-CN") == "未知对象 'must be text'"
    assert i18n.localize("something the catalogue does not know", "zh-CN") == "something the catalogue does not know"


def test_a_plugin_adds_and_rewords_messages(tmp_path, runtime):
    from metacrm.engine.plugins import hookimpl

    (tmp_path / "zh_TW.po").write_text('msgid "unknown object \'{name}\'"\nmsgstr "查無物件 {name}"\n\n'
                                       'msgid "my plugin failed"\nmsgstr "外掛失敗"\n', encoding="utf-8")

    class Plugin:
        @hookimpl
        def metacrm_translations(self):
            return [str(tmp_path)]

    runtime.plugins.register(Plugin())
    assert runtime.catalogue.localize("unknown object 'x'", "zh-TW") == "查無物件 x"
    assert runtime.catalogue.translate("my plugin failed", "zh-TW") == "外掛失敗"
    assert runtime.catalogue.localize("unknown object 'x'", "zh-CN") == "未知对象 'x'"  # shipped still there


# -- real requests -----------------------------------------------------------------------------

@pytest.fixture
def api(runtime):
    install(runtime, DEAL)
    with runtime.db.begin() as conn:
        admin = identity.create_user(conn, "Admin", "admin@example.com", roles=["admin"], language="zh-CN")
        auth.set_password(conn, admin.id, "correct horse")
        token = auth.create_token(conn, admin.id, "t", auth.utcnow())
    return TestClient(create_app(runtime)), token


def _requests(client: TestClient, token: str, language: str):
    """(what, response) of each kind of problem a client meets."""
    auth_h = {"Authorization": f"Bearer {token}", "Accept-Language": language}
    json_h = dict(auth_h, **{"Content-Type": "application/json"})
    client.post("/api/v1/records/deal", json={"name": "first", "code": "D-1"}, headers=auth_h)
    yield "unknown object", client.get("/api/v1/records/nope", headers=auth_h)
    yield "bad filter", client.get("/api/v1/records/deal", params={"filter": '[["nope", "eq", 1]]'}, headers=auth_h)
    yield "bad filter JSON", client.get("/api/v1/records/deal", params={"filter": "[oops"}, headers=auth_h)
    yield "unknown parameter", client.get("/api/v1/records/deal", params={"colour": "red"}, headers=auth_h)
    yield "bad JSON", client.post("/api/v1/records/deal", content=b'{"name": ', headers=json_h)
    yield "405", client.put("/api/v1/records/deal", json={}, headers=auth_h)
    yield "413", client.post("/api/v1/records/deal", content=b"x" * (1024 * 1024 + 10), headers=json_h)
    yield "415", client.post("/api/v1/records/deal", content=b"name=x", headers=dict(auth_h, **{
        "Content-Type": "application/x-www-form-urlencoded"}))
    yield "401", client.get("/api/v1/records/deal", headers={"Accept-Language": language})
    yield "401 bad scheme", client.get("/api/v1/records/deal", headers={"Authorization": "Basic x",
                                                                           "Accept-Language": language})
    yield "404 record", client.get("/api/v1/records/deal/00000000-0000-0000-0000-000000000000", headers=auth_h)
    yield "404 route", client.get("/api/v1/nowhere", headers=auth_h)
    yield "decimal places", client.post("/api/v1/records/deal", json={"name": "x", "amount": "1.234"},
                                        headers=auth_h)
    yield "not a number", client.post("/api/v1/records/deal", json={"name": "x", "amount": "lots"}, headers=auth_h)
    yield "unique", client.post("/api/v1/records/deal", json={"name": "again", "code": "D-1"}, headers=auth_h)
    yield "required", client.post("/api/v1/records/deal", json={"code": "D-9"}, headers=auth_h)
    yield "stale plan", client.post("/api/v1/admin/metadata/apply", headers=auth_h, json={
        "documents": {"deal.yaml": DEAL.replace("type: text, required", "type: text, max_length: 90, required")},
        "base_revision": 0})
    unknown_keys = DEAL.replace("name: deal", "name: deal\ncolour: red").replace("type: currency", "type: currency, x: 1")
    yield "metadata problems", client.post("/api/v1/admin/metadata/plan", headers=auth_h,
                                           json={"documents": {"deal.yaml": unknown_keys}})
    yield "bad metadata", client.post("/api/v1/admin/metadata/plan", headers=auth_h,
                                      json={"documents": {"deal.yaml": "name: deal"}, "bogus": 1})


@pytest.mark.parametrize("language", TRANSLATED)
def test_problems_are_fully_translated(api, language):
    client, token = api
    seen = set()
    for what, response in _requests(client, token, language):
        assert response.status_code >= 400, what
        assert response.headers["content-type"] == "application/problem+json", what
        body = response.json()
        seen.add(body["status"])
        assert response.headers["content-language"] == language
        texts = [body["title"], body["detail"], *(e["message"] for e in body.get("errors", []))]
        for text in texts:
            assert has_cjk(text) and english_sentence(text) is None, f"{what} ({language}): {text!r}"
    assert {400, 401, 404, 405, 409, 413, 415, 422} <= seen


def test_half_translated_field_messages_are_whole(api):
    client, token = api
    for language, label, rule in (("zh-CN", "合同金额", "最多保留 2 位小数"), ("zh-TW", "合約金額", "最多保留 2 位小數")):
        response = client.post("/api/v1/records/deal", json={"name": "x", "amount": "1.234"},
                               headers={"Authorization": f"Bearer {token}", "Accept-Language": language})
        assert response.json()["errors"][0]["message"] == f"{label} {rule}"
    english = client.post("/api/v1/records/deal", json={"name": "x", "amount": "1.234"},
                          headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"})
    assert english.json()["errors"][0]["message"] == "Contract amount must have at most 2 decimal places"
    assert english.json()["title"] == "Unprocessable content"


def test_accept_language_quality_values_over_the_api(api):
    client, token = api
    ask = lambda header: client.get("/api/v1/records/nope", headers={  # noqa: E731
        "Authorization": f"Bearer {token}", **({"Accept-Language": header} if header else {})}).json()["detail"]
    assert ask("fr;q=0.1, zh-TW;q=0.9") == "未知物件 'nope'"
    assert ask("fr;q=0.1, en;q=0.9") == "unknown object 'nope'"
    assert ask("fr") == "未知对象 'nope'"  # nothing supported: the user's stored language (zh-CN)
    assert ask(None) == "未知对象 'nope'"


def test_layout_labels_in_meta_follow_the_caller(api):
    client, token = api
    for language, label in (("zh-TW", "合約資訊"), ("en", "Deal Information"), ("zh-CN", "合同信息")):
        meta = client.get("/api/v1/meta/objects/deal", headers={"Authorization": f"Bearer {token}",
                                                                "Accept-Language": language}).json()
        assert meta["layouts"]["form"]["sections"][0]["label"] == label


# -- the command line ---------------------------------------------------------------------------

def run_cli(db_url: str, *args: str, env: dict[str, str] | None = None):
    import os
    import subprocess
    import sys
    from pathlib import Path

    environ = {k: v for k, v in os.environ.items() if k not in ("METACRM_LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, *args],
                          capture_output=True, text=True, timeout=120, env=dict(environ, **(env or {})),
                          cwd=Path(__file__).resolve().parent.parent)


COMPANY = """
name: company
fields:
  - {name: name, type: text, required: true}
"""
CLI_DEAL = DEAL.replace("layouts:", """  - {name: company, type: lookup, target: company,
     label: {en: Company, zh-CN: 公司, zh-TW: 公司}}
  - name: stage
    type: picklist
    label: {en: Stage, zh-CN: 阶段, zh-TW: 階段}
    options:
      - {value: won, label: {en: Closed Won, zh-CN: 赢单, zh-TW: 贏單}}
      - {value: lost, label: {en: Closed Lost, zh-CN: 丢单, zh-TW: 丟單}}
layouts:""")


@pytest.fixture
def cli_project(tmp_path, db_url):
    (tmp_path / "deal.yaml").write_text(CLI_DEAL, encoding="utf-8")
    (tmp_path / "company.yaml").write_text(COMPANY, encoding="utf-8")
    done = run_cli(db_url, "apply", str(tmp_path))
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_cli_messages_follow_metacrm_language_and_the_locale(cli_project, db_url):
    zh_cn = run_cli(db_url, "records", "create", "deal", "--data", '{"name": "x", "amount": "1.234"}',
                    env={"METACRM_LANGUAGE": "zh-CN"})
    assert zh_cn.returncode == 1 and zh_cn.stderr.strip() == "metacrm: amount: 合同金额 最多保留 2 位小数", zh_cn.stderr
    unknown = run_cli(db_url, "records", "create", "deal", "--data", "{oops", env={"LANG": "zh_TW.UTF-8"})
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("metacrm: 記錄不是有效的 JSON：第 1 行第 2 欄"), unknown.stderr
    assert english_sentence(unknown.stderr) is None
    english = run_cli(db_url, "--language", "en", "records", "create", "deal", "--data", "{oops",
                      env={"METACRM_LANGUAGE": "zh-CN"})  # the option wins over the environment
    assert english.stderr.startswith("metacrm: the record is not valid JSON"), english.stderr
    bad_filter = run_cli(db_url, "records", "list", "deal", "--filter", "nope=1", env={"METACRM_LANGUAGE": "zh-TW"})
    assert bad_filter.returncode == 1 and "篩選條件中有未知欄位 'nope'" in bad_filter.stderr, bad_filter.stderr


def test_cli_table_with_labels(cli_project, db_url):
    import json

    company = run_cli(db_url, "records", "create", "company", "--data", '{"name": "Acme"}')
    company_id = json.loads(company.stdout)["id"]
    made = run_cli(db_url, "records", "create", "deal", "--data",
                   json.dumps({"name": "Big", "stage": "won", "company": company_id}))
    assert made.returncode == 0, made.stderr
    raw = run_cli(db_url, "records", "list", "deal", "--fields", "name,stage,company", "--format", "table")
    assert raw.stdout.splitlines()[0].split() == ["id", "name", "stage", "company"]
    assert " won" in raw.stdout and company_id in raw.stdout
    shown = run_cli(db_url, "records", "list", "deal", "--fields", "name,stage,company", "--format", "table",
                    "--labels", env={"METACRM_LANGUAGE": "zh-TW"})
    assert shown.stdout.splitlines()[0].split() == ["id", "名稱", "階段", "公司"], shown.stdout
    assert "贏單" in shown.stdout and "Acme" in shown.stdout
    assert " won" not in shown.stdout and company_id not in shown.stdout
