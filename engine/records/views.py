"""List views by name, as one actor may use them: a saved filter, sort and columns.

A list view is metadata (`layouts.list_views`); a caller names one (`view=` over the API) and
gets its records. What the view says is seen through the actor's rights, exactly as the
layouts in `/meta` show it: hidden columns and sort keys drop out, and a view whose filter
reads a field hidden from the actor (or left with no column) does not exist for them — running
it would reveal the hidden value one record at a time. `me` in the view's filter means the
caller (engine.records.query).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from metacrm.engine.identity.actor import Actor
from metacrm.engine.errors import FieldError, RecordError
from metacrm.engine.records.query import Query, kind_of
from metacrm.metamodel import filters as flt
from metacrm.metamodel.concealment import thaw
from metacrm.metamodel.model import ObjectDef
from metacrm.engine.security.access import rights_of


class UnknownView(RecordError):
    """No list view of that name that the actor may use (a 400 over HTTP)."""


@dataclass(frozen=True)
class View:
    name: str
    filter: Any
    sort: tuple[str, ...]
    columns: tuple[str, ...]


def visible_view(obj: ObjectDef, view: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any] | None:
    """The view without what is hidden from the actor, or None if it cannot be shown at all."""
    try:
        flt.parse_filter(view.get("filter"), kind_of(obj, hidden))
    except flt.FilterError:
        return None
    columns = [name for name in view["columns"] if name not in hidden]
    if not columns:
        return None
    shown = dict(view, columns=columns)
    if "sort" in view:
        shown["sort"] = [key for key in view["sort"] if key.lstrip("-") not in hidden]
    return shown


def views_for(obj: ObjectDef, actor: Actor) -> dict[str, dict[str, Any]]:
    """The list views of `obj` the actor may use, by name, as they see them."""
    hidden = rights_of(obj, actor).hidden
    found = {}
    for view in thaw(obj.layouts or {}).get("list_views", ()):
        shown = visible_view(obj, view, hidden)
        if shown is not None:
            found[shown["name"]] = shown
    return found


def find_view(obj: ObjectDef, name: str, actor: Actor) -> View:
    views = views_for(obj, actor)
    if name not in views:
        known = ", ".join(sorted(views)) or "none"
        raise UnknownView([FieldError("view", "unknown_view",
                                      f"{obj.name} has no list view {name!r}; known views: {known}")])
    view = views[name]
    return View(name, view.get("filter"), tuple(view.get("sort", ())), tuple(view["columns"]))


def with_view(query: Query, view: View) -> Query:
    """`query` run through `view`: the view's filter ANDed with the query's own conditions; the
    query's sort and fields, when it names any, replace the view's."""
    conditions = [c for c in (view.filter, query.filter) if c not in (None, [], {})]
    combined = None if not conditions else conditions[0] if len(conditions) == 1 else {"and": conditions}
    return replace(query, filter=combined, sort=query.sort or view.sort, fields=query.fields or view.columns)
