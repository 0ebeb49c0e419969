"""One form control per field, chosen by type: what the form template needs to draw it.

A widget carries the text the input shows: the user's own input when the form comes back
with errors (nothing they typed is lost), else the stored or default value as an input
expects it (ISO dates, plain decimals). Options and lookup titles are only those the user may see.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from metacrm.engine.ui import formats
from metacrm.engine.ui.conditions import FieldState
from metacrm.metamodel.model import FieldDef
from metacrm.metamodel.types import RELATION_TYPES

INPUT_TYPES = {"email": "email", "phone": "tel", "url": "url", "text": "text"}
NUMBER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})


def kind_of(field: FieldDef) -> str:
    """The control: text, textarea, number, date, datetime, select, multiselect, checkbox, lookup, user."""
    storage = field.storage_type
    if field.type in RELATION_TYPES:
        return "lookup"
    if field.type == "user":
        return "user"
    if storage == "long_text":
        return "textarea"
    if storage in NUMBER_TYPES:
        return "number"
    if storage in ("date", "datetime", "boolean"):
        return {"boolean": "checkbox"}.get(storage, storage)
    if storage == "picklist":
        return "select"
    if storage == "multi_picklist":
        return "multiselect"
    return "text"


def as_input(field: FieldDef, value: Any) -> Any:
    """A stored value as an input's value (a list for a multi-select)."""
    if value is None:
        return [] if field.storage_type == "multi_picklist" else ""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, bool):
        return value
    return str(value)


def step_of(field: FieldDef) -> str:
    if field.storage_type == "integer":
        return "1"
    return "0." + "0" * (field.scale - 1) + "1" if field.scale else "1"


def widget(field: FieldDef, value: Any, raw: Mapping[str, Any] | None, state: FieldState, error: str | None,
           language: str, titles: Mapping[str, str]) -> dict[str, Any]:
    """The template's description of one field's control."""
    kind = kind_of(field)
    current = raw[field.name] if raw is not None and field.name in raw else as_input(field, value)
    if kind == "checkbox" and not isinstance(current, bool):
        current = current in ("on", "true", "1", True)
    info: dict[str, Any] = {
        "name": field.name, "label": field.label(language), "kind": kind, "type": field.type,
        "input_type": INPUT_TYPES.get(field.storage_type, "text"), "value": current,
        "required": state.required, "read_only": state.read_only, "visible": state.visible, "error": error,
        "help": (field.help.get(language) or field.help.get("en") or "") if field.help else "",
        "display": formats.display(field, value, language, dict(titles)), "max_length": field.max_length,
        "step": "", "min": None, "max": None, "suffix": "", "options": [], "target": "", "title": "",
    }
    if kind == "number":
        info.update(step=step_of(field), min=field.min, max=field.max,
                    suffix="%" if field.storage_type == "percent" else "")
    if kind in ("select", "multiselect"):
        chosen = set(current) if isinstance(current, list) else {current}
        info["options"] = [{"value": o.value, "label": o.label(language), "selected": o.value in chosen}
                           for o in field.options]
    if kind in ("lookup", "user"):
        info["target"] = field.target or "user"
        info["title"] = titles.get(str(current), "") if current else ""
    return info
