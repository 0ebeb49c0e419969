"""The field types of the metamodel and what each means to expressions and writes.

Storage types (SQL) live in engine.storage; coercion of input lives in
engine.records. This module only classifies: which value kind an expression sees,
which types are computed by the engine, which reference other records.
"""

from __future__ import annotations

TEXT_TYPES = frozenset({"text", "long_text", "email", "phone", "url", "picklist", "auto_number"})
NUMBER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})
REFERENCE_TYPES = frozenset({"lookup", "master_detail", "user"})
RELATION_TYPES = frozenset({"lookup", "master_detail"})
COMPUTED_TYPES = frozenset({"auto_number", "formula", "rollup"})
ALL_TYPES = (
    TEXT_TYPES
    | NUMBER_TYPES
    | REFERENCE_TYPES
    | {"boolean", "date", "datetime", "multi_picklist", "formula", "rollup", "json"}
)

#: Value kinds that expressions reason about.
KIND_TEXT, KIND_NUMBER, KIND_BOOLEAN = "text", "number", "boolean"
KIND_DATE, KIND_DATETIME, KIND_LIST, KIND_ANY, KIND_NULL = "date", "datetime", "list", "any", "null"


def value_kind(field_type: str) -> str:
    """The kind of value an expression gets for a field of this storage type."""
    if field_type in TEXT_TYPES or field_type in REFERENCE_TYPES:
        return KIND_TEXT
    if field_type in NUMBER_TYPES:
        return KIND_NUMBER
    if field_type == "multi_picklist":
        return KIND_LIST
    if field_type in ("boolean", "date", "datetime"):
        return field_type
    return KIND_ANY


def default_searchable(field_type: str) -> bool:
    """Fields searched by text search unless the metadata says otherwise."""
    return field_type in ("email", "phone", "auto_number")
