"""Convert a stored value from one field type to another, the way input is coerced.

Used by type changes: every existing value is converted (and checked) in Python with
the same rules that apply to new input, so both databases agree on what converts.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from metacrm.metamodel.coercion import coerce
from metacrm.metamodel.model import FieldDef


def portable(value: Any) -> Any:
    """A stored value as the kind of input a user could have typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):  # "12.50" stays "12.50"; "12.00" becomes "12" (so it converts to integer)
        _, digits, exponent = value.as_tuple()
        whole = exponent >= 0 or not any(digits[exponent:])
        return str(int(value)) if whole else format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    return value


def convert(old: FieldDef, new: FieldDef, value: Any) -> Any:
    """The value of `value` (stored under `old`) for `new`; raises CoercionError if it does not fit."""
    if value is None:
        return None
    if old.storage_type == "multi_picklist" and isinstance(value, list):
        if new.storage_type == "multi_picklist":
            return coerce(new, value)
        value = ";".join(value) if new.storage_type != "picklist" or len(value) != 1 else value[0]
    elif new.storage_type == "multi_picklist":
        return coerce(new, [portable(value)] if old.storage_type == "picklist" else portable(value))
    if old.storage_type == "json" and not isinstance(value, str) and new.storage_type != "json":
        import json

        value = json.dumps(value, ensure_ascii=False)
    if old.storage_type in ("decimal", "currency", "percent") and new.storage_type in ("decimal", "currency", "percent"):
        return coerce(new, value)  # exact: a scale change refuses values with more decimals than the new scale
    return coerce(new, portable(value))
