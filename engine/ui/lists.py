"""The list page of an object: one of its list views (chosen by name), as the user may see it,
one keyset page at a time. Columns, filter and sort come from the layout (engine.api.layouts gives
the view without anything hidden from the user)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.api.problems import Problem
from metacrm.engine.records.query import Query
from metacrm.engine.security.access import rights_of
from metacrm.engine.ui import formats
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.nav import navigation, readable_object
from metacrm.engine.ui.render import page
from metacrm.metamodel.model import pick_label

DEFAULT_PAGE_SIZE = 25
DEFAULT_COLUMNS = 6


def list_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        views = visible_layouts(service.runtime.model, obj, unit.actor).get("list_views", [])
        view = _chosen(views, request.query_params.get("view"))
        columns = _columns(obj, view, rights_of(obj, unit.actor).hidden)
        query = Query(filter=view.get("filter") if view else None, sort=tuple(view.get("sort", ())) if view else (),
                      search=request.query_params.get("q") or None, cursor=request.query_params.get("cursor"),
                      limit=int(view.get("page_size", DEFAULT_PAGE_SIZE)) if view else DEFAULT_PAGE_SIZE,
                      fields=tuple(c.name for c in columns))
        result = service.list(obj.name, query, actor=unit.actor, conn=unit.conn)
        titles = formats.lookup_titles(service, obj, columns, result.records, unit)
        rows = [_row(obj, columns, record, unit.language, titles) for record in result.records]
        return page(request, "list.html", {
            "obj": obj, "object_label": obj.label(unit.language), "view": view,
            "views": [{"name": v["name"], "label": pick_label(v.get("label") or {}, unit.language, v["name"])}
                      for v in views],
            "title": pick_label(view.get("label") or {}, unit.language, view["name"]) if view else obj.label(
                unit.language),
            "columns": [{"name": c.name, "label": c.label(unit.language), "type": c.type} for c in columns],
            "rows": rows, "next_cursor": result.next_cursor, "search": request.query_params.get("q", ""),
            "nav": navigation(service.runtime.model, unit.actor), "user": unit.actor, "csrf": unit.csrf,
        }, language=unit.language)


def _chosen(views: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    if name:
        for view in views:
            if view["name"] == name:
                return view
        raise Problem(404, f"no list view {name!r}")
    return views[0] if views else None


def _columns(obj, view, hidden: frozenset[str]):
    names = view["columns"] if view else [obj.title_field] + [f.name for f in obj.fields if f.name != obj.title_field]
    fields = [formats.field_for(obj, n) for n in names if n not in hidden]
    fields = [f for f in fields if f is not None]
    return fields if view else fields[:DEFAULT_COLUMNS]


def _row(obj, columns, record: dict[str, Any], language: str, titles: dict[str, str]) -> dict[str, Any]:
    return {"id": record["id"],
            "cells": [{"name": c.name, "text": formats.display(c, record.get(c.name), language, titles),
                       "type": c.type} for c in columns]}
