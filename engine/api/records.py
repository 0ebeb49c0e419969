"""/api/v1/records/{object}: list, create, get, update, delete, bulk — all through the RecordService."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.api.bodies import read_json, read_object
from engine.api.context import authenticate
from engine.api.problems import Problem
from engine.records.coercion import json_integer, json_number
from engine.records.query import MAX_LIMIT, Query
from engine.records.serialize import to_jsonable
from engine.records.service import RecordService

LIST_PARAMS = frozenset({"filter", "sort", "search", "fields", "limit", "cursor"})
BULK_LIMIT = 1000


def service(request: Request) -> RecordService:
    return request.app.state.records


def etag(record: dict[str, Any]) -> str:
    return f'"{record["id"]}.{record["version"]}"'


def if_match_version(request: Request, record_id: str) -> int | None:
    """The version named by If-Match (ETag "<id>.<version>", or a bare version), or None."""
    header = request.headers.get("if-match")
    if not header or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    found_id, _, version = value.rpartition(".")
    if found_id and found_id != record_id:
        raise Problem(412, "If-Match names another record")
    if not version.isdigit():
        raise Problem(400, "If-Match must be the ETag you read")
    return int(version)


def _query(request: Request, obj_fields: set[str]) -> Query:
    params = request.query_params
    conditions: list[Any] = []
    for key in params.keys():
        if key in LIST_PARAMS:
            continue
        if key in obj_fields:
            conditions.append([key, "eq", params[key]])
        else:
            raise Problem(400, f"unknown query parameter {key!r}; filter with filter=<JSON> or field=value")
    if "filter" in params:
        try:
            conditions.append(json.loads(params["filter"], parse_float=json_number, parse_int=json_integer))
        except ValueError as exc:  # JSONDecodeError, or an integer too long to read
            raise Problem(400, f"filter is not valid JSON: {getattr(exc, 'msg', exc)}") from None
        except RecursionError:
            raise Problem(400, "filter is nested too deeply") from None
    try:
        limit = int(params.get("limit", 50))
    except ValueError:
        raise Problem(400, "limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, f"limit must be between 1 and {MAX_LIMIT}")
    split = lambda text: tuple(p.strip() for p in text.split(",") if p.strip())  # noqa: E731
    return Query(filter=conditions or None, sort=split(params.get("sort", "")), search=params.get("search"),
                 limit=limit, cursor=params.get("cursor"),
                 fields=split(params["fields"]) if params.get("fields") else None)


def _object_fields(request: Request, name: str) -> set[str]:
    model = request.app.state.runtime.model
    if name not in model:
        raise Problem(404, f"unknown object {name!r}")
    return set(model.object(name).field_names) | {"owner", "id", "created_at", "updated_at"}


async def list_or_create(request: Request) -> Response:
    actor = authenticate(request)
    name = request.path_params["object"]
    fields = _object_fields(request, name)
    if request.method == "POST":
        record = service(request).create(name, await read_object(request, exact=True), actor)
        return JSONResponse(to_jsonable(record), status_code=201, headers={
            "ETag": etag(record), "Location": f"/api/v1/records/{name}/{record['id']}"})
    query = _query(request, fields)
    page = service(request).list(name, query, actor)
    body: dict[str, Any] = {"records": to_jsonable(page.records), "next_cursor": page.next_cursor}
    if page.next_cursor:
        params = dict(request.query_params)
        params["cursor"] = page.next_cursor
        body["next"] = f"{request.url.path}?{urlencode(params)}"
    return JSONResponse(body)


async def one(request: Request) -> Response:
    actor = authenticate(request)
    name, record_id = request.path_params["object"], request.path_params["id"]
    _object_fields(request, name)
    records = service(request)
    if request.method == "GET":
        record = records.get(name, record_id, actor)
        if request.headers.get("if-none-match") == etag(record):
            return Response(status_code=304, headers={"ETag": etag(record)})
        return JSONResponse(to_jsonable(record), headers={"ETag": etag(record)})
    if request.method == "DELETE":
        records.delete(name, record_id, actor, version=if_match_version(request, record_id))
        return Response(status_code=204)
    data = await read_object(request, exact=True)
    for key in ("id", "version", "created_at", "created_by", "updated_at", "updated_by"):
        if key in data:
            raise Problem(422, f"{key} cannot be written")
    record = records.update(name, record_id, data, actor, version=if_match_version(request, record_id))
    return JSONResponse(to_jsonable(record), headers={"ETag": etag(record)})


async def bulk(request: Request) -> Response:
    """POST: create many; PATCH: update many (each with "id", optionally "version")."""
    actor = authenticate(request)
    name = request.path_params["object"]
    _object_fields(request, name)
    body = await read_json(request, limit=8 * 1024 * 1024, exact=True)
    rows = body.get("records") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise Problem(400, 'send {"records": [{...}, ...]}')
    if len(rows) > BULK_LIMIT:
        raise Problem(413, f"at most {BULK_LIMIT} records per call")
    all_or_none = bool(body.get("all_or_none", False))
    records = service(request)
    if request.method == "POST":
        result = records.bulk_create(name, rows, actor, all_or_none=all_or_none)
    else:
        result = records.bulk_update(name, rows, actor, all_or_none=all_or_none)
    return JSONResponse({"ids": result.ids, "written": result.written,
                         "errors": [{"index": i, "errors": [e.as_dict() for e in errs]}
                                    for i, errs in sorted(result.errors.items())]},
                        status_code=200 if not result.errors else 207)
