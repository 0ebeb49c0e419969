"""Turn filters, sorts, text search and keyset cursors into SQL.

Everything a list asks for runs in the database: conditions become WHERE clauses,
sort becomes ORDER BY (always ending in id, so order is total), and the next page
starts after the last row seen (keyset pagination), never at an OFFSET. Nulls sort
as the largest value on both databases.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Sequence

import sqlalchemy as sa

from metacrm.engine.errors import FieldError, ValidationFailed
from metacrm.engine.expressions.evaluator import Clock
from metacrm.metamodel import filters as flt
from metacrm.metamodel.coercion import CoercionError, coerce
from metacrm.metamodel.model import FieldDef, ObjectDef
from metacrm.metamodel.names import SYSTEM_COLUMNS

MAX_LIMIT = 1000
NOT_NULL_SYSTEM = frozenset({"id", "created_at", "updated_at", "version"})
#: Values that stand for the acting user in a condition on a user field (owner, created_by,
#: updated_by, `user` fields): `me`, and `current_user()` as formulas spell it.
ME_VALUES = frozenset({"me", "current_user()"})
USER_SYSTEM_FIELDS = frozenset({"owner", "created_by", "updated_by"})
NOBODY = object()  # no acting user is known: `me` cannot be resolved


@dataclass(frozen=True)
class Query:
    """A list request: filter (raw filter language), sort ("-field"), search, page size, cursor."""

    filter: Any = None
    sort: tuple[str, ...] = ()
    search: str | None = None
    limit: int = 50
    cursor: str | None = None
    fields: tuple[str, ...] | None = None


class QueryError(ValidationFailed):
    def __init__(self, message: str, field: str | None = None):
        super().__init__([FieldError(field, "invalid_query", message)])


def kind_of(obj: ObjectDef, hidden: frozenset[str] = frozenset()):
    """The filter language's view of an object's fields (system columns included, hidden ones not)."""

    def kind(name: str) -> str | None:
        if name in hidden:
            return None
        if obj.has_field(name):
            return obj.field(name).kind
        return flt.system_kind(name)

    return kind


# -- filters -------------------------------------------------------------------------------


def where_clause(obj: ObjectDef, table: sa.Table, raw_filter: Any, clock: Clock,
                 hidden: frozenset[str] = frozenset(), user: Any = NOBODY) -> sa.ColumnElement | None:
    """The WHERE clause of a filter. `user` is the acting user's id, which `me` (and
    `current_user()`) stand for in conditions on user fields; None or NOBODY: there is none."""
    try:
        parsed = flt.parse_filter(raw_filter, kind_of(obj, hidden))
    except flt.FilterError as exc:
        raise QueryError(str(exc)) from None
    return None if parsed is None else _clause(obj, table, parsed, clock, user)


def _clause(obj: ObjectDef, table: sa.Table, node: flt.Filter, clock: Clock, user: Any) -> sa.ColumnElement:
    if isinstance(node, flt.And):
        return sa.and_(sa.true(), *(_clause(obj, table, item, clock, user) for item in node.items))
    if isinstance(node, flt.Or):
        return sa.or_(sa.false(), *(_clause(obj, table, item, clock, user) for item in node.items))
    if isinstance(node, flt.Not):
        # blank values make a condition unknown in SQL; "not" treats unknown as false first
        return sa.not_(sa.func.coalesce(_clause(obj, table, node.item, clock, user), sa.false()))
    return _condition(obj, table, _resolve_me(obj, node, user), clock)


def is_user_field(obj: ObjectDef, name: str) -> bool:
    """Whether `name` holds a user id: owner, created_by, updated_by or a field of type user."""
    return name in USER_SYSTEM_FIELDS or (obj.has_field(name) and obj.field(name).type == "user")


def _resolve_me(obj: ObjectDef, cond: flt.Condition, user: Any) -> flt.Condition:
    """`me` / `current_user()` in a condition on a user field, replaced by the acting user's id.
    Resolved here, per call, so one saved filter (a list view's) means each caller's own records."""
    if not is_user_field(obj, cond.field):
        return cond
    values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
    if not any(isinstance(v, str) and v.strip().lower() in ME_VALUES for v in values):
        return cond
    if user is NOBODY or user is None:
        raise QueryError(f"{cond.field}: 'me' stands for the signed-in user, and there is none here", cond.field)
    resolved = tuple(user if isinstance(v, str) and v.strip().lower() in ME_VALUES else v for v in values)
    return flt.Condition(cond.field, cond.op, resolved if isinstance(cond.value, tuple) else resolved[0])


def _value(obj: ObjectDef, name: str, value: Any) -> Any:
    """A filter value typed like the field it is compared with."""
    if value is None:
        return None
    field = _field_or_system(obj, name)
    try:
        if field.storage_type == "multi_picklist":
            return coerce(_as_picklist(field), value)
        return coerce(field, value if not isinstance(value, (int, float, Decimal)) or field.kind != "text" else str(value))
    except CoercionError as exc:
        shown = str(value) if isinstance(value, Decimal) else repr(value)  # 1E+999999999999999999, not Decimal(...)
        shown = shown if len(shown) <= 60 else shown[:40] + "…"
        raise QueryError(f"{name}: {shown} {exc.message}", name) from None


def _as_picklist(field: FieldDef) -> FieldDef:
    from dataclasses import replace

    return replace(field, type="picklist")


def _field_or_system(obj: ObjectDef, name: str) -> FieldDef:
    if obj.has_field(name):
        return obj.field(name)
    kind = flt.system_kind(name)
    type_ = {"datetime": "datetime", "number": "integer"}.get(kind, "lookup")
    return FieldDef(id=name, name=name, type=type_, kind=kind or "text", scale=0)


def _read_time(obj: ObjectDef, name: str, what: str) -> QueryError:
    return QueryError(f"cannot {what} {name!r}: it is computed when read (it depends on today(), now() or "
                      "current_user()), so the database holds no current value; filter on its inputs instead", name)


def _condition(obj: ObjectDef, table: sa.Table, cond: flt.Condition, clock: Clock) -> sa.ColumnElement:
    if cond.field in obj.read_time_formulas:
        raise _read_time(obj, cond.field, "filter on")
    column = table.c[cond.field]
    op, value = cond.op, cond.value
    field = _field_or_system(obj, cond.field)
    if op == "is_null":
        return column.is_(None) if value else column.is_not(None)
    if op in flt.RELATIVE_DATE_OPS:
        start, end = relative_range(op, value, clock.today())
        return _date_range(column, field, start, end)
    if field.storage_type == "multi_picklist":
        return _list_condition(column, op, [_value(obj, cond.field, v) for v in _as_list(value)])
    if op in ("in", "not_in"):
        values = [_value(obj, cond.field, v) for v in value]
        return column.in_(values) if op == "in" else sa.or_(column.not_in(values), column.is_(None))
    if op == "between":
        low, high = (_value(obj, cond.field, v) for v in value)
        return column.between(low, high)
    if op in ("contains", "starts_with") and "\x00" in str(value):
        raise QueryError(f"{cond.field}: text to look for must not contain NUL characters", cond.field)
    if op == "contains":
        return column.icontains(str(value), autoescape=True)
    if op == "starts_with":
        return column.istartswith(str(value), autoescape=True)
    typed = _value(obj, cond.field, value)
    if op == "eq":
        return column.is_(None) if typed is None else column == typed
    if op == "ne":
        return column.is_not(None) if typed is None else sa.or_(column != typed, column.is_(None))
    return {"lt": column < typed, "le": column <= typed, "gt": column > typed, "ge": column >= typed}[op]


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _list_condition(column, op: str, values: list[str]) -> sa.ColumnElement:
    """multi_picklist values are stored as JSON text: match the quoted value."""
    text = sa.type_coerce(column, sa.Text())
    hits = [text.contains(json.dumps(v, ensure_ascii=False), autoescape=True) for v in values]
    if op in ("eq", "contains", "in"):
        return sa.or_(*hits)
    if op in ("ne", "not_in"):
        return sa.or_(column.is_(None), sa.not_(sa.or_(*hits)))
    raise QueryError(f"operator {op!r} does not apply to a multi-picklist")


def relative_range(op: str, days: Any, today: date) -> tuple[date, date]:
    """Inclusive [start, end] dates of a relative date operator."""
    if op == "today":
        return today, today
    if op == "yesterday":
        return today - timedelta(days=1), today - timedelta(days=1)
    if op == "last_n_days":  # a span past the calendar's ends stops at them
        return today - timedelta(days=min(int(days), (today - date.min).days)), today
    if op == "next_n_days":
        return today, today + timedelta(days=min(int(days), (date.max - today).days))
    if op == "this_week":
        start = today - timedelta(days=today.weekday())
        return start, start + timedelta(days=6)
    if op == "this_month":
        start = today.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if op == "last_month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    if op == "this_year":
        return today.replace(month=1, day=1), today.replace(month=12, day=31)
    raise QueryError(f"unknown relative date operator {op!r}")


def _date_range(column, field: FieldDef, start: date, end: date) -> sa.ColumnElement:
    if field.kind == "datetime":
        low = datetime.combine(start, time.min, tzinfo=timezone.utc)
        high = datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc)
        return sa.and_(column >= low, column < high)
    return column.between(start, end)


# -- search --------------------------------------------------------------------------------


def search_clause(obj: ObjectDef, table: sa.Table, text: str | None,
                  hidden: frozenset[str] = frozenset()) -> sa.ColumnElement | None:
    """Every word must appear in at least one searchable field (title field included, hidden ones not)."""
    if not text or not text.strip():
        return None
    if "\x00" in text:
        raise QueryError("search text must not contain NUL characters")
    names = [n for n in dict.fromkeys(([obj.title_field] if obj.title_field != "id" else [])
                                      + [f.name for f in obj.searchable_fields])
             if n not in hidden and n not in obj.read_time_formulas]
    if not names:
        raise QueryError(f"{obj.name} has no searchable fields")
    words = text.split()[:8]
    return sa.and_(*(sa.or_(*(table.c[n].icontains(word, autoescape=True) for n in names)) for word in words))


# -- sort and keyset -----------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY term. Picklists sort in option order (their `ranks`), like the form shows them."""

    name: str
    descending: bool
    nullable: bool
    ranks: tuple[str, ...] | None = None

    def expression(self, table: sa.Table) -> sa.ColumnElement:
        column = table.c[self.name]
        if self.ranks is None:
            return column
        return sa.case({value: rank for rank, value in enumerate(self.ranks)}, value=column, else_=None)

    def position(self, value: Any) -> Any:
        """The value compared in keyset pagination (the option's rank for picklists)."""
        if self.ranks is None or value is None:
            return value
        return self.ranks.index(value) if value in self.ranks else None


def sort_keys(obj: ObjectDef, sort: Sequence[str], hidden: frozenset[str] = frozenset()) -> list[SortKey]:
    keys: list[SortKey] = []
    for item in sort or ("-created_at",):
        name, descending = item.lstrip("-+"), item.startswith("-")
        if name in hidden or (not obj.has_field(name) and name not in SYSTEM_COLUMNS):
            raise QueryError(f"cannot sort by unknown field {name!r}", name)
        if obj.has_field(name) and obj.field(name).storage_type in ("json", "multi_picklist", "long_text"):
            raise QueryError(f"cannot sort by {name!r}", name)
        if name in obj.read_time_formulas:
            raise _read_time(obj, name, "sort by")
        if name == "id" or any(k.name == name for k in keys):
            continue
        nullable = name not in NOT_NULL_SYSTEM and not (obj.has_field(name) and obj.field(name).required)
        field = obj.field(name) if obj.has_field(name) else None
        ranks = field.option_values if field is not None and field.storage_type == "picklist" else None
        keys.append(SortKey(name, descending, nullable or ranks is not None, ranks))
    keys.append(SortKey("id", False, False))
    return keys


def order_by(table: sa.Table, keys: list[SortKey]) -> list[sa.ColumnElement]:
    clauses = []
    for key in keys:
        column = key.expression(table)
        ordered = column.desc() if key.descending else column.asc()
        if key.nullable:
            ordered = ordered.nulls_first() if key.descending else ordered.nulls_last()
        clauses.append(ordered)
    return clauses


def after_clause(table: sa.Table, keys: list[SortKey], last: list[Any]) -> sa.ColumnElement:
    """Rows strictly after `last` in the order given by `keys`."""
    if all(not k.nullable and k.ranks is None for k in keys) and len({k.descending for k in keys}) == 1:
        row = sa.tuple_(*(table.c[k.name] for k in keys))
        values = sa.tuple_(*(sa.literal(v, table.c[k.name].type) for k, v in zip(keys, last)))
        return row < values if keys[0].descending else row > values
    return sa.and_(_after(table, keys, last), *_seek_bound(table, keys[0], last[0]))


def _seek_bound(table: sa.Table, key: SortKey, value: Any) -> list[sa.ColumnElement]:
    """A redundant bound on the first sort column, so the database can seek into the index
    instead of filtering every earlier row out of the expanded OR condition."""
    if value is None or key.ranks is not None:
        return []
    column = table.c[key.name]
    if key.descending:
        return [column <= value]  # nulls sort first descending: none come after a value
    return [sa.or_(column >= value, column.is_(None))] if key.nullable else [column >= value]


def _after(table: sa.Table, keys: list[SortKey], last: list[Any]) -> sa.ColumnElement:
    key, value = keys[0], last[0]
    column = key.expression(table)
    if len(keys) == 1:
        tie = sa.false()
    else:
        tie = _after(table, keys[1:], last[1:])
    if value is None:  # nulls are the largest value
        same = sa.and_(column.is_(None), tie)
        return sa.or_(column.is_not(None), same) if key.descending else same
    beyond = column < value if key.descending else column > value
    if key.nullable and not key.descending:
        beyond = sa.or_(beyond, column.is_(None))
    return sa.or_(beyond, sa.and_(column == value, tie))


MAX_CURSOR = 8192  # characters: a cursor holds one value per sort key and a short digest


def encode_cursor(keys: list[SortKey], row: dict[str, Any], query: Query | None = None,
                  object_name: str = "") -> str:
    """The position after `row`, bound to the list it came from (object, sort, filter, search)."""
    values = [_jsonable(k.position(row[k.name])) for k in keys]
    body = {"k": cursor_binding(object_name, keys, query), "v": values}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(obj: ObjectDef, keys: list[SortKey], cursor: str, query: Query | None = None) -> list[Any]:
    """The position a cursor names, refused (a QueryError, never a wrong page) when the cursor
    is garbled or belongs to another list: another object, sort, filter or search."""
    body = _cursor_body(cursor)
    if body.get("k") != cursor_binding(obj.name, keys, query):
        raise QueryError("this cursor belongs to another list (the sort, filter or search changed); "
                         "start again from the first page", "cursor")
    values = body.get("v")
    try:
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError
        decoded = []
        for key, value in zip(keys, values):
            if value is None or key.ranks is None:
                decoded.append(None if value is None else _value(obj, key.name, value))
            elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(key.ranks):
                decoded.append(value)
            else:
                raise ValueError("bad rank")
        return decoded
    except (ValueError, TypeError, QueryError, RecursionError):
        raise QueryError("invalid cursor: it is damaged; start again from the first page", "cursor") from None


def _cursor_body(cursor: Any) -> dict[str, Any]:
    try:
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR:
            raise ValueError
        body = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        if not isinstance(body, dict):
            raise ValueError
        return body
    except (ValueError, TypeError, RecursionError, binascii.Error, UnicodeDecodeError):
        raise QueryError("invalid cursor: it is damaged; start again from the first page", "cursor") from None


def cursor_binding(object_name: str, keys: list[SortKey], query: Query | None) -> str:
    """A digest of what a page depends on besides the position: object, sort, filter, search."""
    search = " ".join((query.search or "").split()) if query is not None else ""
    what = [object_name, [[k.name, k.descending] for k in keys], query.filter if query is not None else None, search]
    try:
        text = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # keys that do not sort (a filter built in Python): still deterministic
        text = repr(what)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
