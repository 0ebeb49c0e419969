"""Which formulas are computed when a record is read rather than stored at write time.

A formula whose value changes with the clock or with the reader — it calls `today()`,
`now()` or `current_user()`, or reads such a formula (of its own record, or of another
record through a lookup) — cannot be stored: nothing writes the record when midnight
passes. The engine computes these formulas whenever it reads a record, so they never
disagree with their inputs, and refuses what only a stored value could serve (SQL
filters, sorts, rollups).

This works on the raw field definitions (name -> mapping with `type`, `expression`,
`target`), so the compiler can ask before the model exists and the engine can ask of a
compiled model.
"""

from __future__ import annotations

import ast
from typing import Callable, Mapping

from metacrm.metamodel.expressions.checker import attribute_path

READ_TIME_FUNCTIONS = frozenset({"today", "now", "current_user"})
RELATION_TYPES = frozenset({"lookup", "master_detail"})

#: fields_of(object name) -> {field name: raw field definition}; empty for an unknown object
FieldsOf = Callable[[str], Mapping[str, Mapping]]


def is_read_time(fields_of: FieldsOf, object_name: str, field_name: str) -> bool:
    """Whether `object_name.field_name` is a formula computed when read."""
    return _visit(fields_of, object_name, field_name, frozenset())


def _visit(fields_of: FieldsOf, object_name: str, field_name: str, stack: frozenset) -> bool:
    key = (object_name, field_name)
    raw = fields_of(object_name).get(field_name)
    if key in stack or not raw or raw.get("type") != "formula":
        return False  # a cycle adds nothing: it is an error elsewhere, or leads through stored values
    try:
        tree = ast.parse(str(raw.get("expression", "")).strip(), mode="eval")
    except SyntaxError:
        return False
    stack = stack | {key}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in READ_TIME_FUNCTIONS:
            return True
        path = attribute_path(node)
        if path and _path_is_read_time(fields_of, object_name, path, stack):
            return True
    return False


def _path_is_read_time(fields_of: FieldsOf, object_name: str, path: tuple[str, ...], stack: frozenset) -> bool:
    current = object_name
    for part in path[:-1]:
        raw = fields_of(current).get(part)
        if not raw or raw.get("type") not in RELATION_TYPES or not raw.get("target"):
            return False
        current = raw["target"]
    return _visit(fields_of, current, path[-1], stack)
