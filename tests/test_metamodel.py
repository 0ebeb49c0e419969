"""Metadata documents: schema errors, names, expressions and cycles, found before anything is applied."""

from __future__ import annotations

import pytest

from metacrm.metamodel.compiler import compile_model
from metacrm.metamodel.errors import MetadataError
from metacrm.metamodel.loader import load_directory
from tests.conftest import documents

ACCOUNT = """
name: account
label: {en: Account, zh-CN: 客户, zh-TW: 客戶}
fields:
  - name: name
    type: text
    required: true
  - name: grade
    type: picklist
    options: [A, B, C]
"""


def compile_texts(*texts):
    return compile_model(documents(*texts))


def problems_of(*texts) -> list[str]:
    with pytest.raises(MetadataError) as info:
        compile_texts(*texts)
    return [str(p) for p in info.value.problems]


def test_valid_document_compiles_with_labels_and_fallback():
    model = compile_texts(ACCOUNT)
    account = model.object("account")
    assert account.label("zh-CN") == "客户"
    assert account.label("zh-TW") == "客戶"
    assert account.label("fr") == "Account"
    assert account.field("grade").label("zh-CN") == "Grade"  # falls back to a humanized name
    assert account.title_field == "name"
    assert account.field("grade").option_values == ("A", "B", "C")


def test_malformed_yaml_names_file_and_line():
    problems = problems_of("name: account\nfields:\n  - name: x\n    type: [unclosed\n")
    assert len(problems) == 1
    assert problems[0].startswith("doc0.yaml:")
    assert "invalid YAML" in problems[0]


def test_unknown_field_type_is_reported_with_path_and_line():
    text = ACCOUNT.replace("type: picklist", "type: picklst")
    (problem,) = problems_of(text)
    assert "doc0.yaml:9: fields[1].type" in problem
    assert "'picklst' is not one of" in problem


def test_unknown_keys_are_rejected():
    (problem,) = problems_of(ACCOUNT.replace("required: true", "required: true\n    requird: true"))
    assert "fields[0]" in problem and "requird" in problem


@pytest.mark.parametrize("bad_name, reason", [
    ("select", "reserved SQL word"),
    ("Name", "lower snake_case"),
    ("a; drop table x", "lower snake_case"),
    ("x" * 49, "longer than 48"),
    ("metacrm_things", "reserved for the engine"),
])
def test_invalid_object_names(bad_name, reason):
    text = ACCOUNT.replace("name: account", f"name: {bad_name!r}")
    problems = problems_of(text)
    assert any(reason in p and "name" in p for p in problems), problems


@pytest.mark.parametrize("bad_name, reason", [
    ("select", "reserved SQL word"),
    ("id", "system column"),
    ("owner", "system column"),
    ("Name", "lower snake_case"),
    ("a; drop table x", "lower snake_case"),
])
def test_invalid_field_names(bad_name, reason):
    text = ACCOUNT.replace("  - name: grade", f"  - name: {bad_name!r}")
    problems = problems_of(text)
    assert any(reason in p and "fields[1].name" in p for p in problems), problems


def test_formula_referring_to_missing_field():
    text = ACCOUNT + """
  - name: score
    type: formula
    result_type: decimal
    expression: "revenue * 2"
"""
    (problem,) = problems_of(text)
    assert "fields[2].expression" in problem and "unknown field 'revenue'" in problem
    assert problem.startswith("doc0.yaml:15:")  # the line of `expression:`


def test_formula_cycle_is_reported():
    text = ACCOUNT + """
  - {name: a, type: formula, result_type: decimal, expression: "b + 1"}
  - {name: b, type: formula, result_type: decimal, expression: "c + 1"}
  - {name: c, type: formula, result_type: decimal, expression: "a + 1"}
"""
    (problem,) = problems_of(text)
    assert "formula cycle: a -> b -> c -> a" in problem


def test_formula_result_type_is_checked():
    text = ACCOUNT + """
  - {name: bad, type: formula, result_type: decimal, expression: "name + '!'"}
"""
    (problem,) = problems_of(text)
    assert "gives text, but number is needed" in problem


@pytest.mark.parametrize("hostile", ["__class__", "name.__class__", "().__class__.__bases__", "9**9**9",
                                     "open('/etc/passwd')", "[x for x in name]", "lambda: 1",
                                     "__import__('os')"])
def test_hostile_expressions_are_refused_at_definition(hostile):
    text = ACCOUNT + f"""
validation_rules:
  - name: hostile
    error_when: {hostile!r}
    message: refused
"""
    (problem,) = problems_of(text)
    assert "validation_rules[0].error_when" in problem


def test_yaml_words_like_no_and_on_stay_text():
    text = ACCOUNT + """
validation_rules:
  - {name: r, error_when: "name == 'x'", message: no}
"""
    account = compile_texts(text).object("account")
    assert account.validation_rules[0].message() == "no"


def test_wrong_value_where_a_label_is_expected_is_explained():
    text = ACCOUNT + """
validation_rules:
  - {name: r, error_when: "name == 'x'", message: 12}
"""
    (problem,) = problems_of(text)
    assert "validation_rules[0].message: 12 is not valid here: expected text" in problem


def test_validation_rule_must_be_boolean():
    text = ACCOUNT + """
validation_rules:
  - {name: r, error_when: "name", message: x}
"""
    (problem,) = problems_of(text)
    assert "gives text, but boolean is needed" in problem


def test_lookup_target_and_relation_paths_are_checked():
    contact = """
name: contact
fields:
  - {name: last_name, type: text}
  - {name: account, type: lookup, target: account}
  - {name: grade, type: formula, result_type: text, expression: "account.grade"}
  - {name: bad, type: formula, result_type: text, expression: "account.missing"}
  - {name: worse, type: formula, result_type: text, expression: "last_name.grade"}
  - {name: partner, type: lookup, target: partner}
"""
    problems = problems_of(ACCOUNT, contact)
    assert any("unknown field 'account.missing' on account" in p for p in problems)
    assert any("'last_name' is not a lookup" in p for p in problems)
    assert any("lookup target 'partner' is not an object" in p for p in problems)
    assert len(problems) == 3


def test_rollup_must_point_back_through_a_lookup():
    text = ACCOUNT + """
  - name: total
    type: rollup
    rollup: {object: account, via: name, function: sum, field: grade}
"""
    (problem,) = problems_of(text)
    assert "must be a lookup on account pointing at account" in problem


def test_duplicate_field_and_bad_default_are_reported_together():
    text = ACCOUNT + """
  - {name: grade, type: text}
  - {name: size, type: integer, default: "big"}
"""
    problems = problems_of(text)
    assert any("field 'grade' is defined twice" in p for p in problems)
    assert any("fields[3].default" in p and "whole number" in p for p in problems)


def test_list_view_produces_composite_index():
    text = ACCOUNT + """
layouts:
  list_views:
    - name: top
      columns: [name, grade]
      filter: [[grade, eq, A]]
      sort: [-created_at]
"""
    account = compile_texts(text).object("account")
    # the view's index (its sort direction kept), then the default list order's (newest first)
    assert [(ix.columns, ix.descending) for ix in account.indexes] == [
        (("grade", "created_at", "id"), ("created_at",)), (("created_at", "id"), ("created_at",))]


def test_layout_references_are_checked():
    text = ACCOUNT + """
layouts:
  form:
    sections: [{label: Main, fields: [name, nope]}]
  list_views:
    - {name: all, columns: [name], filter: [[grade, contains_not, A]]}
"""
    problems = problems_of(text)
    assert any("unknown field 'nope'" in p for p in problems)
    assert any("unknown operator 'contains_not'" in p for p in problems)


def test_missing_template_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MetadataError) as info:
        load_directory(tmp_path / "nope")
    assert "no such template" in str(info.value)


def test_template_manifest_lists_missing_file(tmp_path):
    (tmp_path / "template.yaml").write_text("name: t\nversion: '1'\nobjects: [objects/a.yaml]\n")
    with pytest.raises(MetadataError) as info:
        load_directory(tmp_path)
    assert "template.yaml:3: objects[0]" in str(info.value)


def test_only_text_fields_are_searchable_and_permissions_are_checked():
    text = ACCOUNT + """
  - {name: size, type: integer, searchable: true}
permissions:
  admin: {read: all}
  rep: {read: own, fields: {nope: hidden}}
"""
    problems = problems_of(text)
    assert any("only text fields can be searchable" in p for p in problems)
    assert any("admin role always has full access" in p for p in problems)
    assert any("permissions.rep.fields.nope" in p and "unknown field" in p for p in problems)


def test_a_control_character_is_a_metadata_problem_with_its_line():
    """PyYAML's reader refuses control characters before parsing starts; that must be a problem
    naming the file and line (the API answers 422), not an unhandled ReaderError (a 500)."""
    from metacrm.metamodel.loader import load_documents

    with pytest.raises(MetadataError) as raised:
        load_documents([("bad.yaml", "name: deal\nfields:\n  - {name: a\x1a, type: text}\n")])
    problem = raised.value.problems[0]
    assert (problem.file, problem.line) == ("bad.yaml", 3) and "U+001A" in problem.message
