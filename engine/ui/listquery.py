"""What a list URL asks for — view, filter bar, sort, search, cursor — as an engine Query.

The filter bar's inputs become conditions of the engine's filter language (the same one list
views, the API and the CLI use) and the database does the filtering: nothing is filtered in
Python. The URL is the state (`?view=open&f.stage=proposal&f.amount.min=1000&sort=-amount`),
so a filtered list can be shared, bookmarked and reached with the back button.

Parameters: `view`, `q` (full-text search), `sort` (`field` or `-field`, one of the columns),
`cursor` (keyset position, bound by the engine to this filter/sort/search), and per filterable
field `f.<field>` (choices, a lookup's text, `me` for a user field, true/false, text contained),
`f.<field>.min` / `f.<field>.max` (numbers and dates) and `f.<field>.rel` (a relative date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from metacrm.engine.identity.actor import Actor
from metacrm.engine.errors import RecordError
from metacrm.engine.records.query import Query
from metacrm.engine.security.access import rights_of
from metacrm.engine.ui import formats
from metacrm.metamodel.model import FieldDef, ObjectDef
from metacrm.metamodel.types import RELATION_TYPES

DEFAULT_PAGE_SIZE = 25
DEFAULT_COLUMNS = 6
MAX_LOOKUP_MATCHES = 200
NUMBER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})
TEXT_TYPES = frozenset({"text", "email", "phone", "url", "auto_number"})
UNSORTABLE = frozenset({"json", "multi_picklist", "long_text"})
#: Relative date choices of the filter bar and the engine condition each one is.
RELATIVE = {"today": ("today", None), "yesterday": ("yesterday", None), "this_week": ("this_week", None),
            "this_month": ("this_month", None), "last_month": ("last_month", None), "this_year": ("this_year", None),
            "last_7_days": ("last_n_days", 7), "last_30_days": ("last_n_days", 30),
            "next_7_days": ("next_n_days", 7), "next_30_days": ("next_n_days", 30)}


class BadFilter(ValueError):
    """A filter bar value that cannot be used (the page says which, and shows no rows)."""


@dataclass(frozen=True)
class FilterField:
    """One input group of the filter bar."""

    field: FieldDef
    kind: str  # choice, number, date, lookup, user, boolean, text


@dataclass
class ListState:
    """A list request, parsed: the chosen view, its columns, and the query to run."""

    view: dict[str, Any] | None
    columns: list[FieldDef]
    filters: list[FilterField]
    params: list[tuple[str, str]]  # the filter bar's own parameters, as given (for links and the form)
    conditions: list[Any]
    sort: tuple[str, ...]
    sort_param: str
    search: str
    cursor: str | None
    page_size: int
    error: str | None = None
    values: dict[str, list[str]] = field(default_factory=dict)

    @property
    def filter(self) -> Any:
        """The view's filter and the filter bar's conditions, all of which must hold."""
        parts = ([self.view["filter"]] if self.view and self.view.get("filter") else []) + self.conditions
        return parts or None

    def query(self, **changes: Any) -> Query:
        base = dict(filter=self.filter, sort=self.sort, search=self.search or None, cursor=self.cursor,
                    limit=self.page_size, fields=tuple(c.name for c in self.columns))
        base.update(changes)
        return Query(**base)

    def url(self, path: str, *, sort: str | None = None, cursor: str | None = None, drop_filters: bool = False) -> str:
        """`path` with this list's parameters (a different sort or cursor when given)."""
        pairs: list[tuple[str, str]] = []
        if self.view:
            pairs.append(("view", self.view["name"]))
        if self.search:
            pairs.append(("q", self.search))
        if not drop_filters:
            pairs += self.params
        chosen = self.sort_param if sort is None else sort
        if chosen:
            pairs.append(("sort", chosen))
        if cursor:
            pairs.append(("cursor", cursor))
        return path + ("?" + urlencode(pairs) if pairs else "")

    def value(self, name: str) -> str:
        return (self.values.get(name) or [""])[0]

    def chosen(self, name: str) -> list[str]:
        return self.values.get(name, [])


def choose_view(views: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    """The view named `name` (None when there is no such view), else the first one."""
    if name:
        return next((v for v in views if v["name"] == name), None)
    return views[0] if views else None


def columns_of(obj: ObjectDef, view: dict[str, Any] | None, hidden: frozenset[str]) -> list[FieldDef]:
    names = view["columns"] if view else [obj.title_field] + [f.name for f in obj.fields if f.name != obj.title_field]
    fields = [formats.field_for(obj, n) for n in names if n not in hidden]
    fields = [f for f in fields if f is not None]
    return fields if view else fields[:DEFAULT_COLUMNS]


def filter_kind(obj: ObjectDef, f: FieldDef) -> str | None:
    """How the filter bar asks for a value of `f` (None: not filterable)."""
    if f.name in obj.read_time_formulas:
        return None
    kind = f.storage_type
    if kind in ("picklist", "multi_picklist"):
        return "choice"
    if kind in NUMBER_TYPES:
        return "number"
    if kind in ("date", "datetime"):
        return "date"
    if f.type in RELATION_TYPES:
        return "lookup"
    if f.type == "user":
        return "user"
    if kind == "boolean":
        return "boolean"
    if kind in TEXT_TYPES:
        return "text"
    return None


def sortable(obj: ObjectDef, f: FieldDef) -> bool:
    return f.storage_type not in UNSORTABLE and f.name not in obj.read_time_formulas


def parse(service, obj: ObjectDef, views: list[dict[str, Any]], params: QueryParams, actor: Actor,
          conn) -> ListState:
    """The ListState of a list URL; a view that does not exist is None (the caller answers 404)."""
    view = choose_view(views, params.get("view"))
    hidden = rights_of(obj, actor).hidden
    columns = columns_of(obj, view, hidden)
    bar = [FilterField(c, kind) for c in columns if (kind := filter_kind(obj, c)) is not None]
    if not any(f.field.name == "owner" for f in bar) and "owner" not in hidden:
        bar.append(FilterField(formats.SYSTEM_FIELDS["owner"], "user"))
    names = {c.name for c in columns}
    wanted = params.get("sort", "")
    sort_param = wanted if wanted.lstrip("-") in names and sortable(obj, formats.field_for(obj, wanted.lstrip("-"))
                                                                     ) else ""
    sort = (sort_param,) if sort_param else tuple(view.get("sort", ())) if view else ()
    page_size = int(view.get("page_size", DEFAULT_PAGE_SIZE)) if view else DEFAULT_PAGE_SIZE
    state = ListState(view, columns, bar, [], [], sort, sort_param, (params.get("q") or "").strip()[:200],
                      params.get("cursor") or None, page_size)
    for item in bar:
        try:
            _read_filter(service, obj, item, params, actor, conn, state)
        except BadFilter as exc:
            state.error = f"{item.field.label(actor.language)}: {exc}"
    return state


def _read_filter(service, obj: ObjectDef, item: FilterField, params: QueryParams, actor: Actor, conn,
                 state: ListState) -> None:
    name, key = item.field.name, f"f.{item.field.name}"
    given = {k: [v for v in params.getlist(k) if v.strip()] for k in (key, key + ".min", key + ".max", key + ".rel")}
    given = {k: v for k, v in given.items() if v}
    for k, values in given.items():
        state.params += [(k, v) for v in values]
        state.values[k] = values
    if item.kind == "choice" and key in given:
        known = set(item.field.option_values)
        values = [v for v in given[key] if v in known]
        if len(values) != len(given[key]):
            raise BadFilter("unknown choice")
        state.conditions.append([name, "in", values])
    elif item.kind in ("number", "date"):
        _read_range(item, given, key, state)
    elif item.kind == "lookup" and key in given:
        state.conditions.append([name, "in", _matching_ids(service, item.field, given[key][0], actor, conn)])
    elif item.kind == "user" and key in given:
        user = given[key][0]
        state.conditions.append([name, "eq", actor.user_id if user == "me" else user])
    elif item.kind == "boolean" and key in given:
        if given[key][0] not in ("true", "false"):
            raise BadFilter("choose yes or no")
        state.conditions.append([name, "eq", given[key][0] == "true"])
    elif item.kind == "text" and key in given:
        state.conditions.append([name, "contains", given[key][0][:200]])


def _read_range(item: FilterField, given: dict[str, list[str]], key: str, state: ListState) -> None:
    name = item.field.name
    if item.kind == "date" and key + ".rel" in given:
        relative = RELATIVE.get(given[key + ".rel"][0])
        if relative is None:
            raise BadFilter("unknown date range")
        op, days = relative
        state.conditions.append([name, op, days] if days is not None else [name, op])
    for suffix, op in ((".min", "ge"), (".max", "le")):
        if key + suffix not in given:
            continue
        text = given[key + suffix][0].strip()
        if item.kind == "number":
            state.conditions.append([name, op, text])
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadFilter("write dates as YYYY-MM-DD") from None
        if item.field.storage_type == "datetime":  # a day's end is the next day's start
            bound = day if op == "ge" else day + timedelta(days=1)
            state.conditions.append([name, "ge" if op == "ge" else "lt", f"{bound.isoformat()}T00:00:00+00:00"])
        else:
            state.conditions.append([name, op, day.isoformat()])


def _matching_ids(service, f: FieldDef, text: str, actor: Actor, conn) -> list[str]:
    """Ids of the target records (that the user may see) whose searchable text matches `text`."""
    try:
        found = service.list(f.target, Query(search=text[:200], fields=("id",), limit=MAX_LOOKUP_MATCHES),
                             actor=actor, conn=conn).records
    except RecordError as exc:
        raise BadFilter(str(exc)) from None
    return [str(r["id"]) for r in found]
