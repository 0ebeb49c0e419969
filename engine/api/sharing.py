"""/api/v1/records/{object}/{id}/shares: list, add and remove the shares of one record, with the
rules of engine.security.sharing (read access to list; edit rights to share or unshare; only
your own shares unless you own the record or are an admin; users and groups must exist)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from metacrm.engine.api.bodies import awaited, read_object
from metacrm.engine.api.context import authenticate
from metacrm.engine.api.problems import Problem
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.security import sharing

SHARE_KEYS = frozenset({"user_id", "group", "access"})
UNSHARE_KEYS = frozenset({"user_id", "group"})


def shares(request: Request) -> JSONResponse:
    """GET lists, POST {"user_id" | "group", "access": "read" | "edit"} adds (201), DELETE
    ?user_id=… or ?group=… removes."""
    actor = authenticate(request)
    service = request.app.state.records
    name, record_id = request.path_params["object"], request.path_params["id"]
    if request.method == "GET":
        return JSONResponse({"shares": to_jsonable(sharing.shares_of(service, name, record_id, actor))})
    if request.method == "DELETE":
        given = dict(request.query_params)
        _only(given, UNSHARE_KEYS, "name the share to remove with ?user_id=<id> or ?group=<name>")
        removed = sharing.unshare(service, name, record_id, actor, user_id=given.get("user_id"),
                                  group=given.get("group"))
        return JSONResponse({"removed": removed})
    body = awaited(read_object, request)
    _only(body, SHARE_KEYS, 'send {"user_id": "<id>"} or {"group": "<name>"}, with "access": "read" or "edit"')
    made = sharing.share(service, name, record_id, actor, user_id=body.get("user_id"), group=body.get("group"),
                         access=body.get("access", "read"))
    return JSONResponse({"share": to_jsonable(made)}, status_code=201)


def _only(given: dict, allowed: frozenset[str], usage: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown or not all(isinstance(v, str) for v in given.values()):
        raise Problem(400, f"{usage}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
