"""The record page /app/o/{object}/{id}: the record's fields by the form layout as the user may see
them, its related lists, the buttons for what the user may do next, and its activity timeline.

A record the user may not see is the same 404 page as one that does not exist. Lookups link to
the target's record page, titled only when the user may read the target.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.automation.manual import may_run
from metacrm.engine.records.query import Query
from metacrm.engine.ui import approvals, collab, conditions, formats, formlayout, timeline
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.render import page
from metacrm.metamodel.model import FieldDef, ObjectDef, pick_label
from metacrm.metamodel.types import RELATION_TYPES

RELATED_PAGE = 5
LINKED_TYPES = {"email": "mailto:", "phone": "tel:", "url": ""}


def record_page(request: Request) -> Response:
    with signed_in(request) as unit:
        return render_record(request, unit)


def render_record(request: Request, unit, alerts: list[str] | None = None, status: int = 200) -> Response:
    """The record page (also after a refused button, with the engine's reasons as `alerts`)."""
    service = request.app.state.records
    model = service.runtime.model
    obj = readable_object(model, request.path_params["object"], unit.actor)
    record = service.get(obj.name, request.path_params["id"], actor=unit.actor, conn=unit.conn)
    access = service.access(obj, unit.actor, unit.conn)
    tabs = formlayout.form_tabs(model, obj, unit.actor, access.hidden)
    shown = formlayout.fields_of(tabs)
    paths = conditions.related(service, unit.conn, obj, record, unit.actor)
    states = conditions.states(model, obj, shown, record, paths, unit.actor, access.read_only)
    titles = formats.lookup_titles(service, obj, shown, [record], unit)
    related = related_lists(service, unit, obj, record)
    editable = _editable(service, unit, obj, record)
    return page(request, "record.html", {
        "obj": obj, "object_label": obj.label(unit.language), "record": record,
        "title": _title(obj, record, access.hidden),
        "tabs": [{"label": t.label, "sections": [{"label": s.label, "columns": s.columns, "cells": [
            _cell(f, record, unit.language, titles) for f in s.fields if states[f.name].visible]}
            for s in t.sections]} for t in tabs],
        "path": _path(obj, record, access.hidden, unit.language),
        "moves": _moves(obj, record, unit.actor, access, unit.language) if editable else [],
        "rules": _rules(obj, unit.actor, unit.language), "editable": editable,
        "approval": approvals.buttons(unit.conn, obj, record, unit.actor, editable, unit.language),
        "related": related, "timeline": timeline.entries(service, unit, obj, record, _followups(related)),
        "alerts": alerts or [], **collab.state(service, unit, obj, record, related), **chrome(service, unit),
    }, status=status, language=unit.language)


def related_lists(service, unit, obj: ObjectDef, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The first page of each related list of the record's layouts, as the user may see them."""
    return [_related_list(service, unit, obj, record, r) for r in
            visible_layouts(service.runtime.model, obj, unit.actor).get("related_lists", [])]


def _title(obj: ObjectDef, record: dict[str, Any], hidden: frozenset[str]) -> str:
    value = record.get(obj.title_field) if obj.title_field not in hidden else None
    return str(value) if value not in (None, "") else str(record["id"])


def _cell(f: FieldDef, record: dict[str, Any], language: str, titles: dict[str, str]) -> dict[str, Any]:
    value = record.get(f.name)
    text = formats.display(f, value, language, titles)
    link = ""
    if f.type in RELATION_TYPES and value and str(value) in titles:
        link = f"/app/o/{quote(f.target or '')}/{quote(str(value))}"
    elif f.type in RELATION_TYPES and value:
        text = "—"  # a record the user may not read: neither its title nor a way to it
    elif f.storage_type in LINKED_TYPES and isinstance(value, str) and value:
        link = _safe_link(f.storage_type, value)
    return {"name": f.name, "label": f.label(language), "text": text, "link": link, "type": f.storage_type,
            "wide": f.storage_type in ("long_text", "rich_text")}


def _safe_link(kind: str, value: str) -> str:
    """mailto:/tel:/http(s) links only: a stored `javascript:` URL stays plain text."""
    if kind == "url":
        return value if value.lower().startswith(("http://", "https://")) else ""
    return LINKED_TYPES[kind] + value


def _path(obj: ObjectDef, record: dict[str, Any], hidden: frozenset[str], language: str) -> list[dict[str, Any]]:
    """The stages of the record's first state machine, as a path with the current one marked."""
    for machine in obj.state_machines:
        if machine.field in hidden:
            continue
        current = record.get(machine.field)
        options = obj.field(machine.field).options
        index = next((i for i, o in enumerate(options) if o.value == current), -1)
        return [{"label": o.label(language), "current": i == index, "done": i < index} for i, o in enumerate(options)]
    return []


def _editable(service, unit, obj: ObjectDef, record: dict[str, Any]) -> bool:
    access = service.access(obj, unit.actor, unit.conn)
    if access.rights.edit == "none":
        return False
    if not service.load_for_update(unit.conn, obj.name, [record["id"]], actor=unit.actor, scope="edit"):
        return False
    return service.locked(unit.conn, obj, record["id"], actor=unit.actor) is None


def _moves(obj: ObjectDef, record: dict[str, Any], actor, access, language: str) -> list[dict[str, Any]]:
    """Buttons for the transitions the state machines allow from the current state and that the
    user's roles may take; guards are checked by the engine when the button is pressed."""
    moves = []
    for machine in obj.state_machines:
        if machine.field in access.hidden or machine.field in access.read_only:
            continue
        f = obj.field(machine.field)
        current = record.get(machine.field)
        for option in f.options:
            t = machine.transition(current, option.value) if option.value != current else None
            if t is None or (t.roles and not actor.system and not actor.roles.intersection(t.roles)):
                continue
            moves.append({"field": f.name, "to": option.value, "label": option.label(language)})
    return moves


def _rules(obj: ObjectDef, actor, language: str) -> list[dict[str, str]]:
    return [{"name": r.name, "label": pick_label(getattr(r, "labels", {}) or {}, language,
                                                 r.name.replace("_", " ").capitalize())} for r in obj.automations
            if r.trigger.on == "manual" and r.active and may_run(r, actor)]


def _related_list(service, unit, obj: ObjectDef, record: dict[str, Any], layout: dict[str, Any]) -> dict[str, Any]:
    """The first page of one related list, and where its full list (filtered by the lookup, which
    the list page matches by the parent's title) and its "new" form are."""
    model = service.runtime.model
    parent_hidden = service.access(obj, unit.actor, unit.conn).hidden
    child = model.object(layout["object"])
    hidden = service.access(child, unit.actor, unit.conn).hidden
    names = layout.get("columns") or [child.title_field]
    columns = [f for f in (formats.field_for(child, n) for n in names if n not in hidden) if f is not None]
    query = Query(filter=[[layout["via"], "eq", record["id"]]], sort=tuple(layout.get("sort", ())),
                  fields=tuple(dict.fromkeys([c.name for c in columns] + ["created_at", "created_by"])),
                  limit=RELATED_PAGE)
    result = service.list(child.name, query, actor=unit.actor, conn=unit.conn)
    titles = formats.lookup_titles(service, child, columns, result.records, unit)
    rows = [{"id": r["id"], "created_at": r.get("created_at"), "created_by": r.get("created_by"),
             "title": _title(child, r, hidden),
             "cells": [{"text": formats.display(c, r.get(c.name), unit.language, titles), "type": c.storage_type}
                       for c in columns]} for r in result.records]
    via = quote(layout["via"])
    return {"object": child.name, "via": layout["via"], "label": pick_label(layout.get("label") or {}, unit.language,
                                                      child.plural_labels.get(unit.language) or child.label(
                                                          unit.language)),
            "columns": [c.label(unit.language) for c in columns], "rows": rows, "more": bool(result.next_cursor),
            "list_url": f"/app/o/{quote(child.name)}?f.{via}={quote(_title(obj, record, parent_hidden))}",
            "new_url": f"/app/o/{quote(child.name)}/new?{via}={quote(str(record['id']))}",
            "can_create": service.access(child, unit.actor, unit.conn).rights.create and layout["via"] not in
            service.access(child, unit.actor, unit.conn).read_only,
            "activity_like": child.name in followup_objects(model)}


def followup_objects(model) -> frozenset[str]:
    """The objects whose records are follow-up activities, shown in the timeline: those that a
    time trigger counts as follow-up (`since_related`, "no activity for 30 days"); in a model
    without one, every object with a date or datetime field."""
    named = frozenset(rule.trigger.since_related[0] for o in model.objects.values() for rule in o.automations
                      if getattr(rule.trigger, "since_related", None))
    return named or frozenset(o.name for o in model.objects.values()
                              if any(f.storage_type in ("date", "datetime") for f in o.fields))


def _followups(related: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Follow-up records for the timeline: the related records of activity-like objects."""
    return [{"at": row["created_at"], "who": row["created_by"], "text": row["title"], "kind": r["label"],
             "link": f"/app/o/{r['object']}/{row['id']}"}
            for r in related if r["activity_like"] for row in r["rows"]]
