"""/api/v1/records/{object}: list, create, get, update, delete, bulk — all through the RecordService."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api.bodies import awaited, parse_json, read_json, read_object, whole_number
from metacrm.engine.api.context import authenticate, request_unit
from metacrm.engine.api.problems import Problem
from metacrm.engine.records import related, views
from metacrm.engine.records.query import MAX_LIMIT, Query, QueryError
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.records.service import RecordService
from metacrm.engine.security.access import rights_of

LIST_PARAMS = frozenset({"filter", "sort", "search", "fields", "limit", "cursor", "view"})
ONE_PARAMS = frozenset({"fields", "include"})
BULK_LIMIT = 1000


def service(request: Request) -> RecordService:
    return request.app.state.records


def etag(record: dict[str, Any], obj=None) -> str:
    """"<id>.<version>"; for a record with formulas computed when read (today(), current_user()),
    "<id>.<version>.<digest of their values>", so a cached copy is not taken for a current one."""
    tag = f'{record["id"]}.{record["version"]}'
    names = [n for n in (obj.read_time_formulas if obj is not None else ()) if n in record]
    if names:
        values = json.dumps(to_jsonable({n: record[n] for n in names}), sort_keys=True)
        tag += "." + hashlib.sha256(values.encode()).hexdigest()[:12]
    return f'"{tag}"'


def if_match_version(request: Request, record_id: str) -> int | None:
    """The version named by If-Match (an ETag we gave, or a bare version), or None."""
    header = request.headers.get("if-match")
    if not header or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    parts = value.split(".")  # "<id>.<version>", "<id>.<version>.<digest>" or "<version>"
    found_id, version = (parts[0], parts[1]) if len(parts) in (2, 3) else ("", value)
    if found_id and found_id != record_id:
        raise Problem(412, "If-Match names another record")
    number = whole_number(version)
    if number is None:
        raise Problem(400, "If-Match must be the ETag you read")
    return number


def _query(request: Request, obj_fields: set[str], actor=None) -> Query:
    """The list query of a request; `view=<name>` (needs `actor`) runs it through that list view."""
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
        conditions.append(parse_json(params["filter"], "filter", exact=True))
    limit = whole_number(params.get("limit", "50"), 9)
    if limit is None:
        raise Problem(400, "limit must be a whole number")
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, f"limit must be between 1 and {MAX_LIMIT}")
    query = Query(filter=conditions or None, sort=_split(params.get("sort", "")), search=params.get("search"),
                  limit=limit, cursor=params.get("cursor"),
                  fields=_split(params["fields"]) if params.get("fields") else None)
    if "view" in params:
        obj = _obj(request, request.path_params["object"])
        query = views.with_view(query, views.find_view(obj, params["view"], actor))
    return query


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _obj(request: Request, name: str):
    return request.app.state.runtime.model.object(name)


def _object_fields(request: Request, name: str) -> set[str]:
    model = request.app.state.runtime.model
    if name not in model:
        raise Problem(404, f"unknown object {name!r}")
    return set(model.object(name).field_names) | {"owner", "id", "created_at", "updated_at"}


def visible_fields(request: Request, name: str, actor) -> set[str]:
    """The names `field=value` query parameters may use: a field hidden from the actor is an
    unknown query parameter, exactly like a name that is no field at all."""
    fields = _object_fields(request, name)
    return fields - rights_of(request.app.state.runtime.model.object(name), actor).hidden


def list_or_create(request: Request) -> Response:
    if request.method == "POST":
        actor = authenticate(request)
        name = request.path_params["object"]
        visible_fields(request, name, actor)
        record = service(request).create(name, awaited(read_object, request, exact=True), actor=actor)
        return JSONResponse(to_jsonable(record), status_code=201, headers={
            "ETag": etag(record, _obj(request, name)), "Location": f"/api/v1/records/{name}/{record['id']}"})
    with request_unit(request) as unit:
        name = request.path_params["object"]
        query = _query(request, visible_fields(request, name, unit.actor), unit.actor)
        page = service(request).list(name, query, actor=unit.actor, conn=unit.conn)
    body: dict[str, Any] = {"records": to_jsonable(page.records), "next_cursor": page.next_cursor}
    if page.next_cursor:
        params = dict(request.query_params)
        params["cursor"] = page.next_cursor
        body["next"] = f"{request.url.path}?{urlencode(params)}"
    return JSONResponse(body)


def one(request: Request) -> Response:
    name, record_id = request.path_params["object"], request.path_params["id"]
    records = service(request)
    if request.method == "GET":
        return _get_one(request, name, record_id)
    actor = authenticate(request)
    _object_fields(request, name)
    if request.method == "DELETE":
        records.delete(name, record_id, actor=actor, version=if_match_version(request, record_id))
        return Response(status_code=204)
    data = awaited(read_object, request, exact=True)
    for key in ("id", "version", "created_at", "created_by", "updated_at", "updated_by"):
        if key in data:
            raise Problem(422, f"{key} cannot be written")
    record = records.update(name, record_id, data, actor=actor, version=if_match_version(request, record_id))
    return JSONResponse(to_jsonable(record), headers={"ETag": etag(record, _obj(request, name))})


def bulk(request: Request) -> Response:
    """POST: create many; PATCH: update many (each with "id", optionally "version")."""
    actor = authenticate(request)
    name = request.path_params["object"]
    _object_fields(request, name)
    body = awaited(read_json, request, limit=8 * 1024 * 1024, exact=True)
    rows = body.get("records") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise Problem(400, 'send {"records": [{...}, ...]}')
    if len(rows) > BULK_LIMIT:
        raise Problem(413, f"at most {BULK_LIMIT} records per call")
    all_or_none = bool(body.get("all_or_none", False))
    records = service(request)
    if request.method == "POST":
        result = records.bulk_create(name, rows, actor=actor, all_or_none=all_or_none)
    else:
        result = records.bulk_update(name, rows, actor=actor, all_or_none=all_or_none)
    return JSONResponse({"ids": result.ids, "written": result.written,
                         "errors": [{"index": i, "errors": [e.as_dict() for e in errs]}
                                    for i, errs in sorted(result.errors.items())]},
                        status_code=200 if not result.errors else 207)


def _get_one(request: Request, name: str, record_id: str) -> Response:
    """One record; `fields=` keeps some fields (and id, version); `include=` adds related lists.
    With `include=` there is no 304: the related records can change while the record does not."""
    params = request.query_params
    unknown = [key for key in params.keys() if key not in ONE_PARAMS]
    if unknown:
        raise Problem(400, f"unknown query parameter {unknown[0]!r}; a single record takes only fields= and include=")
    include = _split(params.get("include", ""))
    if "include" in params and not include:
        raise Problem(400, "include= needs the name of a related list (or child object)")
    with request_unit(request) as unit:
        _object_fields(request, name)
        obj = _obj(request, name)
        wanted = related.resolve(request.app.state.runtime.model, obj, include, unit.actor) if include else []
        record = service(request).get(name, record_id, actor=unit.actor, conn=unit.conn)
        pages = related.first_pages(service(request), request.app.state.runtime.model, record["id"], wanted,
                                    actor=unit.actor, conn=unit.conn) if wanted else {}
    tag = etag(record, obj)
    if not include and request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    body = to_jsonable(_keep_fields(record, _split(params.get("fields", ""))))
    if include:
        body["_related"] = {key: _related_body(page) for key, page in pages.items()}
    return JSONResponse(body, headers={"ETag": tag})


def _keep_fields(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The record with only `fields` (and id, version); a field it lacks (none such, or hidden from
    the caller) is refused like in a list."""
    if not fields:
        return record
    unknown = [f for f in fields if f not in record]
    if unknown:
        raise QueryError(f"unknown field(s): {', '.join(unknown)}")
    keep = set(fields) | {"id", "version"}
    return {k: v for k, v in record.items() if k in keep}


def _related_body(page: related.RelatedPage) -> dict[str, Any]:
    """{"object", "items", "next"}; `next` is the list endpoint's link to the following page."""
    following = None
    if page.next_cursor:
        via, _, value = page.query.filter[0]
        params = {via: value, "limit": str(page.query.limit), "cursor": page.next_cursor}
        if page.query.sort:
            params["sort"] = ",".join(page.query.sort)
        following = f"/api/v1/records/{page.list.object}?{urlencode(params)}"
    return {"object": page.list.object, "items": to_jsonable(page.records), "next": following}
