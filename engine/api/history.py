"""GET /api/v1/records/{object}/{id}/history: field changes, newest first, page by page, as the
caller may see them (engine.records.history: the record must be readable, hidden fields are out)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api import paging
from metacrm.engine.api.context import request_unit
from metacrm.engine.records.history import MAX_PAGE, history_page
from metacrm.engine.records.serialize import to_jsonable

PARAMS = frozenset({"limit", "cursor"})


def history(request: Request) -> Response:
    with request_unit(request) as unit:
        paging.only(request, PARAMS)
        limit = paging.limit(request, 50, MAX_PAGE)
        page = history_page(request.app.state.records, request.path_params["object"], request.path_params["id"],
                            actor=unit.actor, limit=limit, cursor=request.query_params.get("cursor"),
                            conn=unit.conn)
    return JSONResponse({"items": to_jsonable(page.items), "next": paging.next_link(request, page.next_cursor)})
