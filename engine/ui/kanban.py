"""The kanban of an object whose layout has one: a column per option of the group_by field (in
option order), each with its record count and the sum of the layout's sum_field computed by the
database over the records the user may read (engine.records.totals), and the first cards.

A card dragged to another column is saved with RecordService.update as the signed-in user, so
the state machine, validation rules and automations decide; a refused move answers 422 with
the reason, and the page puts the card back (static/kanban.js). The filter bar and search are
the list page's (engine.ui.listquery): the same URL parameters filter both.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.api.problems import Problem
from metacrm.engine.errors import RecordError
from metacrm.engine.records.totals import SUMMABLE, group_totals
from metacrm.engine.security.access import rights_of
from metacrm.engine.ui import formats, listquery, strings
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.bulk import explain
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.lists import filter_bar_entry, picklist_color
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.render import page
from metacrm.metamodel.model import ObjectDef

CARDS_PER_COLUMN = 25


def _board(model, obj: ObjectDef, actor) -> dict[str, Any]:
    kanban = visible_layouts(model, obj, actor).get("kanban")
    if not kanban:
        raise Problem(404, "no kanban")
    return kanban


def summed_field(obj: ObjectDef, kanban: dict[str, Any]) -> str | None:
    name = kanban.get("sum_field")
    if name and obj.has_field(name) and obj.field(name).storage_type in SUMMABLE \
            and name not in obj.read_time_formulas:
        return name
    return None


def kanban_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        model = service.runtime.model
        obj = readable_object(model, request.path_params["object"], unit.actor)
        kanban = _board(model, obj, unit.actor)
        views = visible_layouts(model, obj, unit.actor).get("list_views", [])
        state = listquery.parse(service, obj, views, request.query_params, unit.actor, unit.conn)
        if request.query_params.get("view") and state.view is None:
            raise Problem(404, "no such list view")
        context = _context(service, unit, obj, kanban, state)
        return page(request, "kanban.html", context, status=400 if context["error"] else 200,
                    language=unit.language)


def _context(service, unit, obj: ObjectDef, kanban: dict[str, Any], state) -> dict[str, Any]:
    language, actor = unit.language, unit.actor
    group = obj.field(kanban["group_by"])
    sum_name = summed_field(obj, kanban)
    hidden = rights_of(obj, actor).hidden
    cards = [formats.field_for(obj, n) for n in kanban.get("card_fields", ()) if n not in hidden]
    cards = [c for c in cards if c is not None]
    shown = tuple(dict.fromkeys([obj.title_field, *(c.name for c in cards), group.name]))
    shown = tuple(n for n in shown if n not in hidden and (obj.has_field(n) or n in formats.SYSTEM_FIELDS))
    error, totals, columns, records = state.error, {}, [], []
    path = f"/app/o/{obj.name}"
    if error is None:
        try:
            totals = group_totals(service, obj.name, group.name, sum_name, actor=actor, filter=state.filter,
                                  search=state.search or None, conn=unit.conn)
            for option in group.options:
                found = service.list(obj.name, state.query(
                    filter=[*([state.filter] if state.filter else []), [group.name, "eq", option.value]],
                    fields=shown, limit=CARDS_PER_COLUMN, cursor=None), actor=actor, conn=unit.conn).records
                records.append((option, found))
        except RecordError as exc:
            error, records = str(exc), []
    every = [r for _, found in records for r in found]
    titles = formats.lookup_titles(service, obj, cards, every, unit)
    sum_def = obj.field(sum_name) if sum_name else None
    for option, found in records:
        total = totals.get(option.value)
        count = total.count if total else 0
        columns.append({
            "value": option.value, "label": option.label(language), "color": picklist_color(group, option.value), "count": count,
            "sum": formats.display(sum_def, total.sum if total and total.sum is not None else 0, language)
            if sum_def else None,
            "more": max(0, count - len(found)),
            "list_url": state.url(path) + ("&" if "?" in state.url(path) else "?") + f"f.{group.name}={option.value}",
            "cards": [_card(obj, r, cards, language, titles, path) for r in found]})
    return {
        "obj": obj, "object_label": obj.plural_labels.get(language) or obj.label(language), "active": obj.name,
        "state": state, "path": path, "columns": columns, "group": group.label(language), "group_name": group.name,
        "sum_label": sum_def.label(language) if sum_def else None, "error": error,
        "filters": [_filter_of(service, obj, f, state, language) for f in state.filters if f.field.name != group.name],
        "list_url": state.url(path), "clear_url": state.url(path + "/kanban", drop_filters=True, sort=""),
        "search": state.search, "editable": rights_of(obj, actor).edit != "none" and group.name not in
        rights_of(obj, actor).read_only and not group.is_computed and not group.read_only,
        "move_url": f"{path}/kanban/move", **chrome(service, unit),
    }


def _filter_of(service, obj, item, state, language):
    return filter_bar_entry(service, obj, item, state, language)


def _card(obj: ObjectDef, record: dict[str, Any], cards, language: str, titles: dict[str, str],
          path: str) -> dict[str, Any]:
    title = str(record.get(obj.title_field) or record["id"])
    lines = [{"label": c.label(language), "text": formats.display(c, record.get(c.name), language, titles),
              "type": c.storage_type} for c in cards if c.name != obj.title_field]
    return {"id": record["id"], "version": record.get("version"), "title": title, "url": f"{path}/{record['id']}",
            "lines": [line for line in lines if line["text"]]}


def move_card(request: Request) -> Response:
    """POST /app/o/{object}/kanban/move (id, to, version): save the new group value, or say why not."""
    form = read_form(request)
    service = request.app.state.records
    with signed_in(request, form) as unit:
        model = service.runtime.model
        obj = readable_object(model, request.path_params["object"], unit.actor)
        kanban = _board(model, obj, unit.actor)
        actor = unit.actor
        views = visible_layouts(model, obj, actor).get("list_views", [])
        state = listquery.parse(service, obj, views, QueryParams(form.get("back", "").lstrip("?")), actor, unit.conn)
    group = obj.field(kanban["group_by"])
    target = form.get("to", "")
    option = next((o for o in group.options if o.value == target), None)
    if option is None:  # answered as JSON, like every move: the page shows the reason
        return JSONResponse({"ok": False, "reason": strings.text(actor.language, "move_refused", reason=target[:60])},
                            status_code=400)
    version = form.get("version", "")
    try:
        saved = service.update(obj.name, form.get("id", ""), {group.name: target}, actor=actor,
                               version=int(version) if version.isdigit() else None)
    except RecordError as exc:
        reason = explain(obj, exc.errors, actor.language)
        return JSONResponse({"ok": False, "reason": strings.text(actor.language, "move_refused", reason=reason)},
                            status_code=409 if type(exc).__name__ == "Conflict" else 422)
    totals = _totals(service, obj, group.name, summed_field(obj, kanban), actor,
                     state.filter if state.error is None else None, state.search or None)
    return JSONResponse({"ok": True, "version": saved.get("version"), "totals": totals,
                         "message": strings.text(actor.language, "move_saved", column=option.label(actor.language))})


def _totals(service, obj: ObjectDef, group: str, sum_name: str | None, actor, filter_, search) -> dict[str, Any]:
    """Every column's count and sum after a move, under the board's filter and search."""
    found = group_totals(service, obj.name, group, sum_name, actor=actor, filter=filter_, search=search)
    sum_def = obj.field(sum_name) if sum_name else None
    shown = {}
    for option in obj.field(group).options:
        t = found.get(option.value)
        shown[option.value] = {"count": t.count if t else 0, "sum": formats.display(
            sum_def, t.sum if t and t.sum is not None else 0, actor.language) if sum_def else None}
    return shown
