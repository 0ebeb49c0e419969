"""Related lists of one record (a 360° read): the first page of each list of child records.

A related list is named in the parent's layout (`layouts.related_lists`: child object, the `via`
lookup, sort) or is any child object (an object with a lookup to the parent). A list is asked
for by its name: the child object's name, or `<object>.<via>` when the child has several
lookups to the parent. Each page is an ordinary list through RecordService, so the child's
read scope and hidden fields apply; a list the actor may not read at all (no read right on the
child, or the `via` lookup hidden from them) is left out without an error, as `/meta` leaves
it out of their layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy.engine import Connection

from metacrm.engine.identity.actor import Actor
from metacrm.engine.errors import FieldError, RecordError
from metacrm.engine.records.query import Query
from metacrm.metamodel.concealment import thaw
from metacrm.metamodel.model import Model, ObjectDef
from metacrm.engine.security.access import rights_of

FIRST_PAGE = 10


class UnknownRelated(RecordError):
    """`include=` names no related list of the object (a 400 over HTTP)."""


@dataclass(frozen=True)
class RelatedList:
    name: str
    object: str
    via: str
    sort: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelatedPage:
    """The first page of one related list, and the query that continues it (for a `next` link)."""

    list: RelatedList
    query: Query
    records: list[dict[str, Any]]
    next_cursor: str | None


def related_lists(model: Model, obj: ObjectDef) -> dict[str, RelatedList]:
    """Every related list of `obj` by each name it answers to (layout lists first: their sort)."""
    found: dict[str, RelatedList] = {}
    children = model.children_of(obj.name)
    lookups: dict[str, int] = {}
    for child, _ in children:
        lookups[child.name] = lookups.get(child.name, 0) + 1
    for spec in thaw(obj.layouts or {}).get("related_lists", ()):
        item = RelatedList(spec["object"], spec["object"], spec["via"], tuple(spec.get("sort", ())))
        found.setdefault(f"{item.object}.{item.via}", item)
        if lookups.get(item.object) == 1 or item.object not in found:
            found.setdefault(item.object, item)
    for child, f in children:
        item = RelatedList(child.name, child.name, f.name)
        found.setdefault(f"{child.name}.{f.name}", item)
        if lookups[child.name] == 1:
            found.setdefault(child.name, item)
    return found


def resolve(model: Model, obj: ObjectDef, names: Sequence[str], actor: Actor) -> list[tuple[str, RelatedList]]:
    """The lists `names` ask for, in order; UnknownRelated names the first unknown one and lists
    the names the actor may use (not those of objects they cannot read: /meta hides those too)."""
    known = related_lists(model, obj)
    chosen = []
    for name in dict.fromkeys(names):
        if name not in known:
            listed = ", ".join(sorted(n for n, item in known.items() if readable(model, item, actor))) or "none"
            raise UnknownRelated([FieldError("include", "unknown_related",
                                             f"{obj.name} has no related list {name!r}; known: {listed}")])
        chosen.append((name, known[name]))
    return chosen


def readable(model: Model, item: RelatedList, actor: Actor) -> bool:
    """Whether the actor may read the list: its object at all, and the lookup it goes through."""
    rights = rights_of(model.object(item.object), actor)
    return rights.read != "none" and item.via not in rights.hidden


def first_pages(records, model: Model, record_id: str, lists: Sequence[tuple[str, RelatedList]], *,
                actor: Actor, conn: Connection | None = None,
                limit: int = FIRST_PAGE) -> dict[str, RelatedPage]:
    """The first page of each list the actor may read, by the name it was asked for."""
    pages: dict[str, RelatedPage] = {}
    for name, item in lists:
        if not readable(model, item, actor):
            continue
        rights = rights_of(model.object(item.object), actor)
        sort = tuple(k for k in item.sort if k.lstrip("-+") not in rights.hidden)
        query = Query(filter=[[item.via, "eq", record_id]], sort=sort, limit=limit)
        page = records.list(item.object, query, actor=actor, conn=conn)
        pages[name] = RelatedPage(item, query, page.records, page.next_cursor)
    return pages
