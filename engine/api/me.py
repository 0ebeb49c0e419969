"""GET /api/v1/me: who the caller is (session or token), their roles, groups and what they may
do per object — the engine's own rights (engine.security.profile), nothing decided here."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api.context import request_unit
from metacrm.engine.api.paging import only
from metacrm.engine.api.problems import Problem
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.security.profile import profile


def me(request: Request) -> Response:
    only(request, frozenset())
    with request_unit(request) as unit:
        found = profile(unit.conn, request.app.state.runtime.model, unit.actor)
    if found is None:  # the account went away after the cached sign-in
        raise Problem(401, "this account is not active")
    return JSONResponse(to_jsonable(found))
