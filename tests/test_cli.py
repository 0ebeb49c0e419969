"""The metacrm command line, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ACCOUNT = """\
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: size, type: text}
  - {name: rating, type: picklist, options: [hot, warm, cold]}
"""


def cli(db_url: str, *args: str, stdin: str | None = None, language: str = "en") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "--language", language, *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture
def project(tmp_path, db_url):
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "account.yaml").write_text(ACCOUNT)
    result = cli(db_url, "apply", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


def test_plan_and_apply(project, db_url):
    (project / "account.yaml").write_text(ACCOUNT.replace("{name: size, type: text}", "{name: size, type: integer}")
                                          + "  - {name: notes, type: long_text}\n")
    plan = cli(db_url, "plan", str(project))
    assert plan.returncode == 0
    assert "[needs-data-check] account: change 'size' from text to integer" in plan.stdout
    assert "[safe] account: add field 'notes' (long_text)" in plan.stdout
    cli(db_url, "records", "create", "account", "--data", '{"name": "Acme", "size": "big"}')
    refused = cli(db_url, "apply", str(project))
    assert refused.returncode == 1
    assert "account.size: 1 row(s) cannot become integer" in refused.stderr and "Traceback" not in refused.stderr
    revisions = cli(db_url, "revisions").stdout.splitlines()
    assert revisions[0].startswith("1  ") and not any(line.startswith("2  ") for line in revisions)


def test_record_commands_round_trip(project, db_url):
    made = cli(db_url, "records", "create", "account", stdin='{"name": "Acme", "rating": "hot"}')
    assert made.returncode == 0, made.stderr
    record = json.loads(made.stdout)
    got = json.loads(cli(db_url, "records", "get", "account", record["id"]).stdout)
    assert got["name"] == "Acme" and got["version"] == 1
    updated = cli(db_url, "records", "update", "account", record["id"], "--data", '{"rating": "cold"}', "--version", "1")
    assert json.loads(updated.stdout)["version"] == 2
    stale = cli(db_url, "records", "update", "account", record["id"], "--data", '{"rating": "warm"}', "--version", "1")
    assert stale.returncode == 1 and "changed by someone else" in stale.stderr
    history = [json.loads(line) for line in cli(db_url, "history", "account", record["id"]).stdout.splitlines()]
    assert [(h["field"], h["old_value"], h["new_value"]) for h in history] == [("rating", "hot", "cold")]
    cli(db_url, "records", "create", "account", "--data", '{"name": "Beta", "rating": "warm"}')
    listed = cli(db_url, "records", "list", "account", "--filter", "rating:in=cold,hot", "--sort", "name")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["Acme"]
    table = cli(db_url, "records", "list", "account", "--sort=-name", "--format", "table", "--fields", "name,rating")
    assert table.stdout.splitlines()[2].split() == [table.stdout.splitlines()[2].split()[0], "Beta", "warm"]
    deleted = cli(db_url, "records", "delete", "account", record["id"])
    assert deleted.returncode == 0
    missing = cli(db_url, "records", "get", "account", record["id"])
    assert missing.returncode == 1 and "does not exist" in missing.stderr


@pytest.mark.parametrize("args, stdin, expected", [
    (("records", "create", "account", "--data", "{not json"), None, "not valid JSON"),
    (("records", "create", "account", "--data", "[1]"), None, "must be a JSON object"),
    (("records", "create", "account", "--data", '{"size": 1, "colour": "red"}'), None, "colour"),
    (("records", "create", "nothing", "--data", "{}"), None, "unknown object 'nothing'"),
    (("records", "list", "account", "--filter", "rating~hot"), None, "cannot read filter"),
    (("records", "list", "account", "--filter", "nope=1"), None, "unknown field 'nope'"),
    (("field", "restore", "account", "ghost"), None, "not an archived field"),
    (("apply", "/no/such/dir"), None, "no such template"),
])
def test_bad_input_is_a_message_not_a_traceback(project, db_url, args, stdin, expected):
    result = cli(db_url, *args, stdin=stdin)
    assert result.returncode in (1, 2)
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_messages_in_chinese(project, db_url):
    result = cli(db_url, "records", "create", "account", "--data", "{}", language="zh-CN")
    assert result.returncode == 1 and "为必填项" in result.stderr


def test_malformed_yaml_names_the_file(project, db_url):
    (project / "account.yaml").write_text(ACCOUNT + "  - {name: broken, type: text\n")
    result = cli(db_url, "plan", str(project))
    assert result.returncode == 1
    assert "account.yaml:" in result.stderr and "invalid YAML" in result.stderr


def test_remove_then_restore_field(project, db_url):
    made = json.loads(cli(db_url, "records", "create", "account", "--data", '{"name": "A", "size": "XL"}').stdout)
    (project / "account.yaml").write_text(ACCOUNT.replace("  - {name: size, type: text}\n", ""))
    assert "archived, data kept" in cli(db_url, "apply", str(project)).stdout
    assert "size" not in json.loads(cli(db_url, "records", "get", "account", made["id"]).stdout)
    restored = cli(db_url, "field", "restore", "account", "size")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(cli(db_url, "records", "get", "account", made["id"]).stdout)["size"] == "XL"


def test_help_on_every_command():
    for args in (["--help"], ["records", "list", "--help"], ["template", "install", "--help"], ["apply", "--help"]):
        result = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", *args], capture_output=True, text=True,
                                cwd=ROOT)
        assert result.returncode == 0 and "usage: metacrm" in result.stdout


RULES = ACCOUNT + """\
automations:
  - name: flag_hot
    trigger: {on: manual}
    condition: "rating == 'hot'"
    actions:
      - set: {size: "'XL'"}
      - email: {to: [team@example.com], subject: "Hot: {{ record.name }}", body: "Look at {{ record.name }}"}
"""


def test_automation_commands(tmp_path, db_url):
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "account.yaml").write_text(RULES)
    assert cli(db_url, "apply", str(folder)).returncode == 0
    hot = json.loads(cli(db_url, "records", "create", "account", "--data", '{"name": "Acme", "rating": "hot"}').stdout)
    cold = json.loads(cli(db_url, "records", "create", "account", "--data", '{"name": "Brr", "rating": "cold"}').stdout)
    report = [json.loads(line) for line in cli(db_url, "automation", "test", "account.flag_hot").stdout.splitlines()]
    by_id = {r["id"]: r for r in report}
    assert by_id[hot["id"]]["matches"] and not by_id[cold["id"]]["matches"]
    assert by_id[hot["id"]]["actions"][1] == {"action": "email", "to": ["team@example.com"], "subject": "Hot: Acme"}
    ran = cli(db_url, "automation", "run", "account.flag_hot", "--record", hot["id"], "--record", cold["id"])
    assert json.loads(ran.stdout) == {"rule": "account.flag_hot", "matched": 1, "records": 2}
    assert "flag_hot" in cli(db_url, "automation", "log").stdout
    # the email cannot be delivered (nothing listens on port 1): after its attempts it is a dead letter
    worker = subprocess.run([sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "worker", "--once"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "METACRM_SMTP_URL": "smtp://127.0.0.1:1"})
    assert worker.returncode == 0 and "failed=1" in worker.stdout
    pending = cli(db_url, "outbox", "list", "--status", "pending").stdout
    assert "email" in pending and "SMTP 127.0.0.1:1" in pending  # the error says why, to retry later
    bad = cli(db_url, "automation", "test", "account.nope")
    assert bad.returncode == 1 and "no automation rule 'account.nope'" in bad.stderr
