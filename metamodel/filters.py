"""The filter language shared by list views, rollups, the query API and the CLI.

A filter is a list of conditions (all must hold) or a nested and/or/not tree.
A condition is `[field, op, value]` or `{field, op, value}`. This module parses and
checks filters against an object; engine.records.query turns them into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.names import SYSTEM_COLUMNS

COMPARISON_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
RANGE_OPS = frozenset({"lt", "le", "gt", "ge", "between"})
SET_OPS = frozenset({"in", "not_in"})
TEXT_OPS = frozenset({"contains", "starts_with"})
RELATIVE_DATE_OPS = frozenset(
    {"last_n_days", "next_n_days", "today", "yesterday", "this_week", "this_month", "this_year", "last_month"}
)
NO_VALUE_OPS = frozenset({"today", "yesterday", "this_week", "this_month", "this_year", "last_month"})
ALL_OPS = COMPARISON_OPS | RANGE_OPS | SET_OPS | TEXT_OPS | RELATIVE_DATE_OPS | {"is_null"}


class FilterError(MetacrmError, ValueError):
    """A filter that cannot be understood; the message names the condition."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class And:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class Not:
    item: "Filter"


Filter = Union[Condition, And, Or, Not]

#: kind_of(field_name) -> value kind ('text', 'number', 'date', ...) or None if unknown
KindOf = Callable[[str], Union[str, None]]


MAX_DEPTH = 16
MAX_DAYS = 3_652_059  # from 0001-01-01 to 9999-12-31: a span longer than the calendar means nothing


def parse_filter(raw: Any, kind_of: KindOf) -> Filter | None:
    """Parse a raw filter (list, dict or None) and check fields and operators."""
    if raw is None or raw == [] or raw == {}:
        return None
    return _parse(raw, kind_of)


def _parse(raw: Any, kind_of: KindOf, depth: int = 0) -> Filter:
    if depth > MAX_DEPTH:
        raise FilterError(f"the filter is nested more than {MAX_DEPTH} levels deep")
    if isinstance(raw, (list, tuple)) and raw and isinstance(raw[0], str):
        if len(raw) not in (2, 3) or not isinstance(raw[1], str):
            raise FilterError(f"a condition is [field, op, value], not {list(raw)!r}")
        return _condition(raw[0], raw[1], raw[2] if len(raw) == 3 else None, kind_of)
    if isinstance(raw, (list, tuple)):
        return And(tuple(_parse(item, kind_of, depth + 1) for item in raw))
    if isinstance(raw, Mapping):
        if "field" in raw:
            unknown = set(raw) - {"field", "op", "value"}
            if unknown:
                raise FilterError(f"unknown key(s) in condition: {', '.join(sorted(unknown))}")
            return _condition(raw["field"], raw.get("op", "eq"), raw.get("value"), kind_of)
        if len(raw) == 1:
            (key, value), = raw.items()
            if key in ("and", "or") and isinstance(value, (list, tuple)):
                items = tuple(_parse(item, kind_of, depth + 1) for item in value)
                return And(items) if key == "and" else Or(items)
            if key == "not":
                return Not(_parse(value, kind_of, depth + 1))
    raise FilterError(f"cannot read filter {raw!r}: use [field, op, value] or {{and|or: [...]}}")


def _condition(field: Any, op: Any, value: Any, kind_of: KindOf) -> Condition:
    if not isinstance(field, str):
        raise FilterError(f"condition field must be a name, not {field!r}")
    kind = kind_of(field)
    if kind is None:
        raise FilterError(f"unknown field {field!r} in filter")
    if op not in ALL_OPS:
        raise FilterError(f"unknown operator {op!r} for {field!r}; use one of {', '.join(sorted(ALL_OPS))}")
    if op in RANGE_OPS and kind not in ("number", "date", "datetime", "text"):
        raise FilterError(f"operator {op!r} does not apply to {kind} field {field!r}")
    if op in TEXT_OPS and kind not in ("text", "list"):
        raise FilterError(f"operator {op!r} applies to text fields, not {kind} field {field!r}")
    if op in RELATIVE_DATE_OPS and kind not in ("date", "datetime"):
        raise FilterError(f"operator {op!r} applies to date fields, not {kind} field {field!r}")
    if op in SET_OPS and not isinstance(value, (list, tuple)):
        raise FilterError(f"operator {op!r} on {field!r} needs a list of values")
    if op == "between" and (not isinstance(value, (list, tuple)) or len(value) != 2):
        raise FilterError(f"operator 'between' on {field!r} needs [low, high]")
    if op in ("last_n_days", "next_n_days"):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 7:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
            raise FilterError(f"operator {op!r} on {field!r} needs a whole number of days from 0 to {MAX_DAYS:,}")
    if op == "is_null":
        value = True if value is None else value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise FilterError(f"operator 'is_null' on {field!r} takes true or false")
    return Condition(field, op, tuple(value) if isinstance(value, (list, tuple)) else value)


def fields_in(filter_: Filter | None) -> list[Condition]:
    """Every condition of a filter, in order."""
    if filter_ is None:
        return []
    if isinstance(filter_, Condition):
        return [filter_]
    if isinstance(filter_, Not):
        return fields_in(filter_.item)
    return [c for item in filter_.items for c in fields_in(item)]


def system_kind(name: str) -> str | None:
    """The value kind of a system column, or None if `name` is not one."""
    if name not in SYSTEM_COLUMNS:
        return None
    return {"created_at": "datetime", "updated_at": "datetime", "version": "number"}.get(name, "text")
