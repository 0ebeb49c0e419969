"""/api/v1/notifications: the caller's in-app notifications (engine.security.notifications decides
which they may see: their own, and none about a record they can no longer read)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api import paging
from metacrm.engine.api.bodies import whole_number
from metacrm.engine.api.context import authenticate, request_unit
from metacrm.engine.api.problems import Problem
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.automation import inbox

LIST_PARAMS = frozenset({"unread", "limit", "cursor"})


def listing(request: Request) -> Response:
    with request_unit(request) as unit:
        paging.only(request, LIST_PARAMS)
        unread = _flag(request.query_params.get("unread"))
        limit = paging.limit(request, 50, inbox.MAX_PAGE)
        page = inbox.page(request.app.state.records, unit.actor, unread=unread, limit=limit,
                          cursor=request.query_params.get("cursor"), conn=unit.conn)
    return JSONResponse({"items": to_jsonable(page.items), "next": paging.next_link(request, page.next_cursor),
                         "unread": page.unread})


def unread_count(request: Request) -> Response:
    with request_unit(request) as unit:
        paging.only(request, frozenset())
        return JSONResponse({"unread": inbox.unread_count(request.app.state.records, unit.actor, unit.conn)})


def mark_read(request: Request) -> Response:
    actor = authenticate(request)
    number = whole_number(request.path_params["id"])
    if number is None or not inbox.mark_read(request.app.state.records, actor, number):
        raise Problem(404, f"no notification {request.path_params['id']!r} of yours")
    return Response(status_code=204)


def read_all(request: Request) -> Response:
    inbox.mark_all_read(request.app.state.records, authenticate(request))
    return Response(status_code=204)


def _flag(text: str | None) -> bool | None:
    if text is None:
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise Problem(400, f"unread must be true or false, not {text!r}")
