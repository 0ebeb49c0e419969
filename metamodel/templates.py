"""The template language of emails and notifications: what a template may use, and the
definition-time check of a template against the object's fields. Rendering, within limits, is
the engine's (engine/automation/templates.py), which offers exactly this vocabulary.

Rendering is strict (an unknown name is an error), so a misspelt `{{ record.nmae }}` would
make every write that fires the rule fail. Here the template's syntax tree is read once, when
the metadata is compiled: every name must be one the renderer provides or the template binds
itself, every `record.x` / `previous.x` must be a field of the object, and only the filters
and statements the renderer offers may be used. `previous` exists in every rule; when there
is no earlier version (a create, a timer, a schedule, a manual run) its fields are blank.
"""

from __future__ import annotations

from typing import Mapping

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The names a template sees (engine.automation.actions.ActionContext.template_context).
CONTEXT_NAMES = frozenset({"record", "previous", "object", "label"})
#: Filters whose output is at most a small multiple of their input.
FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat", "first", "float",
    "forceescape", "format", "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
    "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount"})
GLOBALS = frozenset({"range"})
#: String methods a template may call (none builds a longer string than it is given, but replace,
#: which is checked before it runs).
STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdecimal",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip", "partition",
    "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper"})
DATE_ATTRIBUTES = frozenset({"year", "month", "day", "hour", "minute", "second", "isoformat", "strftime",
                             "weekday", "isoweekday", "date"})

#: Parses only (default syntax, as the renderer's); filters and names are checked below.
_PARSER = ImmutableSandboxedEnvironment()

RECORD_NAMES = ("record", "previous")
IMPLICIT = frozenset({"loop", "caller", "varargs", "kwargs"})
TEXT_TYPES = frozenset({"text", "long_text", "email", "phone", "url", "picklist", "auto_number"})
NO_ATTRIBUTES = frozenset({"integer", "decimal", "currency", "percent", "boolean", "lookup", "master_detail", "user"})


def template_problems(source: str, fields: Mapping[str, str]) -> list[str]:
    """What is wrong with a template, given the object's fields ({name: type}); [] when nothing.
    Each message ends with the template line."""
    try:
        tree = _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        return [f"{exc.message} (template line {exc.lineno})"]
    problems: list[str] = []
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        problems.append(_at(node, "a template cannot load other templates"))
    for node in tree.find_all(nodes.For):
        if node.recursive:
            problems.append(_at(node, "recursive loops are not available in templates"))
    for node in tree.find_all(nodes.Filter):
        if node.name not in FILTERS:
            problems.append(_at(node, f"there is no filter {node.name!r} in templates "
                                      f"(available: {', '.join(sorted(FILTERS))})"))
    problems.extend(_name_problems(tree))
    problems.extend(_field_problems(tree, fields))
    return problems


def _at(node: nodes.Node, message: str) -> str:
    return f"{message} (template line {node.lineno})"


def _name_problems(tree: nodes.Template) -> list[str]:
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    bound |= {m.name for m in tree.find_all(nodes.Macro)}
    known = CONTEXT_NAMES | GLOBALS | IMPLICIT | bound
    problems, seen = [], set()
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in known and name.name not in seen:
            seen.add(name.name)
            problems.append(_at(name, f"unknown name {name.name!r}: a template sees "
                                      f"{', '.join(sorted(CONTEXT_NAMES))}"))
    return problems


def _field_of(node: nodes.Node) -> tuple[str, str] | None:
    """("record", "stage") for record.stage or record['stage'], else None."""
    if not isinstance(getattr(node, "node", None), nodes.Name) or node.node.name not in RECORD_NAMES:
        return None
    if isinstance(node, nodes.Getattr):
        return node.node.name, node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.node.name, node.arg.value
    return None


def _field_problems(tree: nodes.Template, fields: Mapping[str, str]) -> list[str]:
    problems = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        found = _field_of(node)
        if found is not None and found[1] not in fields:
            problems.append(_at(node, f"{found[0]}.{found[1]}: there is no field {found[1]!r}"))
            continue
        inner = _field_of(node.node) if isinstance(node, nodes.Getattr) else None
        if inner is None or inner[1] not in fields:
            continue
        type_ = fields[inner[1]]
        allowed = DATE_ATTRIBUTES if type_ in ("date", "datetime") else STR_METHODS if type_ in TEXT_TYPES \
            else frozenset() if type_ in NO_ATTRIBUTES else None  # None: formulas, lists, JSON are not checked
        if allowed is not None and node.attr not in allowed:
            what = "the id of the related record" if type_ in ("lookup", "master_detail", "user") else f"a {type_}"
            problems.append(_at(node, f"{inner[0]}.{inner[1]} is {what}; it has no {node.attr!r}"))
    return problems
