"""Search-as-you-type for lookup and user fields: GET /app/o/{object}/options?q= and
GET /app/people?q= answer [{"value": id, "text": title}] as JSON, searched as the signed-in
user (a record they may not see is never an option; a hidden title field gives ids only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.records.query import Query, QueryError
from metacrm.engine.ui import people
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.web.templating import PAGE_HEADERS

LIMIT = 20


def search_text(request: Request) -> str:
    """What the user typed: at most 200 characters, without NUL (no database stores or matches it)."""
    return request.query_params.get("q", "")[:200].replace("\x00", "")


def options(request: Request) -> Response:
    service = request.app.state.records
    text = search_text(request)
    with signed_in(request) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        hidden = service.access(obj, unit.actor, unit.conn).hidden
        title = obj.title_field if obj.title_field not in hidden else "id"
        query = Query(search=text or None, fields=(title,) if title != "id" else (), limit=LIMIT)
        try:
            found = service.list(obj.name, query, actor=unit.actor, conn=unit.conn).records
        except QueryError:
            found = []
    items = [{"value": str(r["id"]), "text": str(r.get(title) or r["id"])} for r in found]
    return JSONResponse(items, headers={**PAGE_HEADERS, "Cache-Control": "no-store"})


def people_options(request: Request) -> Response:
    with signed_in(request) as unit:
        found = people.search(unit.conn, search_text(request), LIMIT)
    return JSONResponse([{"value": i, "text": n} for i, n in found],
                        headers={**PAGE_HEADERS, "Cache-Control": "no-store"})
