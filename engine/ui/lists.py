"""The list page of an object: one of its list views (chosen by name), filtered, sorted and
searched as the URL says (engine.ui.listquery), as the user may see it, one keyset page at a
time. An htmx request gets only the records fragment (table, pager, bulk bar) and the browser
pushes the URL, so the page never reloads and the back button still works.

Columns, filter and sort come from the layout as the user may see it (engine.api.layouts:
nothing hidden from the user). Export streams the same query as CSV (engine.records.csvio,
with the export right); bulk actions are engine.ui.bulk.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.api.problems import Problem
from metacrm.engine.automation.manual import may_run
from metacrm.engine.identity import active_users, audit
from metacrm.engine.records.csvio import export_query, export_rows
from metacrm.engine.errors import RecordError
from metacrm.engine.security.access import rights_of
from metacrm.engine.ui import formats, listquery
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.render import page
from metacrm.metamodel.model import ObjectDef, pick_label
from metacrm.metamodel.types import RELATION_TYPES

BULK_TYPES = frozenset({"text", "email", "phone", "url", "picklist", "integer", "decimal", "currency", "percent",
                        "date", "datetime", "boolean"})


def list_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        context = listing(service, unit, request.path_params["object"], request.query_params)
        fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "records"
        return page(request, "list_records.html" if fragment else "list.html", context,
                    status=400 if context["error"] else 200, language=unit.language)


def listing(service, unit, object_name: str, params, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    """The context of a list page (or its fragment): the view, filter bar, rows and what the user may do."""
    model = service.runtime.model
    obj = readable_object(model, object_name, unit.actor)
    views = visible_layouts(model, obj, unit.actor).get("list_views", [])
    state = listquery.parse(service, obj, views, params, unit.actor, unit.conn)
    if params.get("view") and state.view is None:
        raise Problem(404, "no such list view")
    rows, next_cursor, error = [], None, state.error
    if error is None:
        try:
            result = service.list(obj.name, state.query(), actor=unit.actor, conn=unit.conn)
            rows, next_cursor = result.records, result.next_cursor
        except RecordError as exc:
            error = str(exc)
    language = unit.language
    titles = formats.lookup_titles(service, obj, state.columns, rows, unit)
    rights = rights_of(obj, unit.actor)
    path = f"/app/o/{obj.name}"
    return {
        "obj": obj, "object_label": obj.plural_labels.get(language) or obj.label(language), "path": path,
        "state": state, "view": state.view, "active": obj.name,
        "views": [{"name": v["name"], "label": pick_label(v.get("label") or {}, language, v["name"])} for v in views],
        "title": pick_label(state.view.get("label") or {}, language, state.view["name"]) if state.view
        else obj.plural_labels.get(language) or obj.label(language),
        "columns": [_column(obj, c, state, path, language) for c in state.columns],
        "rows": [_row(obj, state.columns, r, language, titles, path) for r in rows],
        "next_cursor": next_cursor, "next_url": state.url(path, cursor=next_cursor) if next_cursor else None,
        "first_url": state.url(path) if state.cursor else None,
        "filters": [filter_bar_entry(service, obj, f, state, language) for f in state.filters],
        "clear_url": state.url(path, drop_filters=True), "search": state.search,
        "export_url": state.url(path + "/export") if rights.export else None,
        "import_url": path + "/import" if rights.create else None,
        "kanban_url": state.url(path + "/kanban", sort="") if "kanban" in visible_layouts(
            model, obj, unit.actor) else None,
        "bulk": _bulk_choices(obj, rights, unit, language), "error": error, "outcome": outcome,
        "self_url": state.url(path), **chrome(service, unit),
    }


def _column(obj: ObjectDef, c, state, path: str, language: str) -> dict[str, Any]:
    current = state.sort[0] if state.sort else ""
    direction = "asc" if current == c.name else "desc" if current == "-" + c.name else None
    toggle = "-" + c.name if direction == "asc" else c.name
    return {"name": c.name, "label": c.label(language), "type": c.storage_type, "sorted": direction,
            "sort_url": state.url(path, sort=toggle) if listquery.sortable(obj, c) else None}


def _row(obj: ObjectDef, columns, record: dict[str, Any], language: str, titles: dict[str, str],
         path: str) -> dict[str, Any]:
    cells = []
    for c in columns:
        value = record.get(c.name)
        link = None
        if c.type in RELATION_TYPES and value and str(value) in titles:
            link = f"/app/o/{c.target}/{value}"
        cells.append({"name": c.name, "text": formats.display(c, value, language, titles), "type": c.storage_type,
                      "link": link, "option": value if c.storage_type == "picklist" else None,
                      "color": picklist_color(c, value)})
    title = str(record.get(obj.title_field) or record["id"])
    return {"id": record["id"], "version": record.get("version"), "url": f"{path}/{record['id']}", "title": title,
            "cells": cells}


def picklist_color(f, value) -> str | None:
    """A picklist option's colour, only when it is a plain #rrggbb (it ends up in a style property)."""
    if f.storage_type != "picklist" or value is None:
        return None
    color = next((o.color for o in f.options if o.value == value), None)
    if color and len(color) in (4, 7) and color[0] == "#" and all(ch in "0123456789abcdefABCDEF" for ch in color[1:]):
        return color
    return None


def filter_bar_entry(service, obj: ObjectDef, item: listquery.FilterField, state, language: str) -> dict[str, Any]:
    f, key = item.field, f"f.{item.field.name}"
    shown: dict[str, Any] = {"name": f.name, "key": key, "label": f.label(language), "kind": item.kind,
                             "value": state.value(key), "min": state.value(key + ".min"),
                             "max": state.value(key + ".max"), "rel": state.value(key + ".rel"),
                             "input": "date" if f.storage_type in ("date", "datetime") else "number"}
    if item.kind == "choice":
        chosen = set(state.chosen(key))
        shown["options"] = [{"value": o.value, "label": o.label(language), "chosen": o.value in chosen}
                            for o in f.options]
    if item.kind == "date":
        shown["relative"] = list(listquery.RELATIVE)
    active = any(state.value(k) for k in (key, key + ".min", key + ".max", key + ".rel"))
    shown["active"] = active
    return shown


def _bulk_choices(obj: ObjectDef, rights, unit, language: str) -> dict[str, Any] | None:
    """What the user may do with selected records (None: nothing, so no checkboxes)."""
    settable = [{"name": f.name, "label": f.label(language)} for f in obj.fields
                if f.storage_type in BULK_TYPES and not f.is_computed and not f.read_only
                and f.name not in rights.hidden and f.name not in rights.read_only and f.type not in RELATION_TYPES]
    rules = [{"name": r.name, "label": r.name.replace("_", " ")}
             for r in obj.automations if r.trigger.on == "manual" and may_run(r, unit.actor)]
    choices = {"owner": rights.edit != "none", "set": settable if rights.edit != "none" else [],
               "delete": rights.delete != "none", "rules": rules}
    if not (choices["owner"] or choices["set"] or choices["delete"] or choices["rules"]):
        return None
    choices["users"] = active_users(unit.conn) if choices["owner"] else []
    return choices


def export_page(request: Request) -> Response:
    """GET /app/o/{object}/export: the current view (filter bar, search, sort, columns) as CSV."""
    service = request.app.state.records
    with signed_in(request) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        views = visible_layouts(service.runtime.model, obj, unit.actor).get("list_views", [])
        state = listquery.parse(service, obj, views, request.query_params, unit.actor, unit.conn)
        if state.error or (request.query_params.get("view") and state.view is None):
            raise Problem(400, state.error or "no such list view")
        actor = unit.actor
    query, columns = export_query(service, obj.name, replace(state.query(), cursor=None), actor)
    first = service.list(obj.name, query, actor=actor)  # a bad filter or sort fails here, before streaming
    detail = {"filter": query.filter, "search": query.search, "sort": list(query.sort), "columns": columns,
              "channel": "ui"}
    runtime = service.runtime

    def stream() -> Iterator[bytes]:
        rows, complete = 0, False
        try:
            for chunk, count in export_rows(service, obj.name, query, actor, columns, first):
                rows += count
                yield chunk.encode("utf-8")
            complete = True
        finally:
            with runtime.db.begin() as conn:
                audit.record(conn, "export", actor.clock.now(), user_id=actor.user_id, object_name=obj.name,
                             detail={**detail, "rows": rows, "complete": complete},
                             address=request.client.host if request.client else None)

    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{obj.name}.csv"',
                                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
