"""Record schemas from field definitions: JSON types and formats, decimals as exact text,
enums with their labels in each language, lookups with their target. Fields hidden from the
caller are not described at all (their names would tell what is hidden)."""

from __future__ import annotations

from typing import Any

from metacrm.engine.api.spec.common import DATE_TIME, LANGUAGES, UUID, nullable, obj
from metacrm.engine.security.access import Access
from metacrm.metamodel.model import FieldDef, ObjectDef

DECIMAL_TYPES = ("decimal", "currency", "percent")
#: What a decimal looks like as text: the API sends a decimal as a JSON number when the number
#: is exactly that decimal, else as this text (never a rounded float); it accepts either.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
SYSTEM_FIELDS = ("id", "created_at", "created_by", "updated_at", "updated_by", "owner", "version")


def system_properties() -> dict[str, Any]:
    user = dict(UUID, **{"x-lookup": "user"})
    return {
        "id": dict(UUID, readOnly=True),
        "created_at": dict(DATE_TIME, readOnly=True),
        "created_by": dict(nullable(user), readOnly=True),
        "updated_at": dict(DATE_TIME, readOnly=True),
        "updated_by": dict(nullable(user), readOnly=True),
        "owner": nullable(user),
        "version": {"type": "integer", "minimum": 1, "readOnly": True,
                    "description": "increases with every change; always returned, also with fields="},
    }


def enum_labels(field: FieldDef) -> dict[str, dict[str, str]]:
    return {language: {o.value: o.label(language) for o in field.options} for language in LANGUAGES}


def _text(field: FieldDef, storage: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if storage == "picklist":
        schema["enum"] = list(field.option_values)
        schema["x-enum-labels"] = enum_labels(field)
    if storage == "email":
        schema["format"] = "email"
    if storage == "url":
        schema["format"] = "uri"
    if field.max_length:
        schema["maxLength"] = field.max_length
    if field.min_length:
        schema["minLength"] = field.min_length
    return schema


def _number(field: FieldDef, storage: str) -> dict[str, Any]:
    if storage == "integer":
        schema: dict[str, Any] = {"type": "integer"}
    else:
        schema = {"type": ["string", "number"], "pattern": DECIMAL_PATTERN,
                  "x-decimal": {"precision": field.precision, "scale": field.scale},
                  "description": f"an exact decimal (at most {field.precision} digits, {field.scale} after the point): "
                                 "a JSON number when exact, else text"}
    for key, word in (("min", "minimum"), ("max", "maximum")):
        bound = getattr(field, key)
        if bound is not None:
            schema[word] = int(bound) if storage == "integer" else float(bound)
    return schema


def value_schema(field: FieldDef) -> dict[str, Any]:
    """The schema of one field's value (not yet nullable)."""
    storage = field.storage_type
    if storage in ("integer", *DECIMAL_TYPES):
        schema = _number(field, storage)
    elif storage == "boolean":
        schema = {"type": "boolean"}
    elif storage == "date":
        schema = {"type": "string", "format": "date"}
    elif storage == "datetime":
        schema = dict(DATE_TIME)
    elif storage == "multi_picklist":
        schema = {"type": "array", "uniqueItems": True,
                  "items": {"type": "string", "enum": list(field.option_values)},
                  "x-enum-labels": enum_labels(field)}
    elif storage == "json":
        schema = {}
    elif storage in ("lookup", "master_detail", "user"):
        schema = dict(UUID, **{"x-lookup": field.target or "user"})
    else:
        schema = _text(field, storage)
    schema["title"] = field.label()
    return schema


#: What the server takes as "no value" for a field that is not required, like null: blank text
#: (engine: metamodel.coercion.is_blank), so a form's empty input clears the field.
BLANK = {"type": "string", "pattern": r"^\s*$", "description": "blank: no value, like null"}


def optional(schema: dict[str, Any]) -> dict[str, Any]:
    """A value a caller may leave out: the value, null, or blank text (which the server stores as null).
    A plain text schema already takes blank text; any other (picklist, number, date, a text with a
    minimum length or a format) is described as "the value or blank"."""
    made = nullable(schema)
    plain_text = made.get("type") == ["string", "null"] and not ({"enum", "format", "minLength", "pattern"} & set(made))
    if plain_text or not schema:
        return made
    return {"title": schema.get("title"), "anyOf": [{k: v for k, v in made.items() if k != "title"}, BLANK]}


def object_schemas(obj_def: ObjectDef, access: Access) -> dict[str, Any]:
    """`<object>` (a record as read: id and version always, other fields when asked for),
    `<object>_create` and `<object>_update` (what a caller may write)."""
    visible = [f for f in obj_def.fields if f.name not in access.hidden]
    record = obj(system_properties(), ["id", "version"],
                 description="A record. id and version are always present; the other fields unless fields= "
                             "names which to return.")
    writable: dict[str, Any] = {"owner": system_properties()["owner"]}
    required = []
    for f in visible:
        schema = value_schema(f)
        locked = f.is_computed or f.read_only or f.name in access.read_only
        record["properties"][f.name] = dict(nullable(schema), readOnly=True) if locked else nullable(schema)
        if locked:
            continue
        if f.required:
            writable[f.name] = dict(schema, minLength=max(1, f.min_length or 0)) if schema.get("type") == "string" \
                else schema
            if f.default is None and f.default_expression is None:
                required.append(f.name)
        else:
            writable[f.name] = optional(schema)
    update = obj(dict(writable), closed=True)
    create = obj(writable, required, closed=True)
    return {obj_def.name: record, f"{obj_def.name}_create": create, f"{obj_def.name}_update": update}
