"""The HTTP side of CSV import and export: request parsing, response streaming, problem mapping.

Import: `POST /api/v1/records/{object}/import` with a text/csv body (`mapping`, `match`,
`dry_run` query parameters). Export: `GET /api/v1/records/{object}/export` with the list
endpoint's parameters streams text/csv page by page; it needs the export right, never shows
hidden fields, and is audited. The CSV logic itself is the records layer's
(engine/records/csvio.py), shared with the `metacrm records import/export` commands.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from metacrm.engine.api import records as record_api
from metacrm.engine.api.bodies import awaited, MAX_IMPORT, read_body
from metacrm.engine.api.context import authenticate
from metacrm.engine.api.problems import Problem
from metacrm.engine.identity import audit
from metacrm.engine.records.csvio import (PAGE, ImportRefused, export_columns, export_rows, import_rows,
                                          parse_csv, parse_mapping)

IMPORT_PARAMS = frozenset({"mapping", "dry_run", "match"})
CSV_TYPES = frozenset({"text/csv", "application/csv"})




def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    word = value.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off", ""):
        return False
    raise Problem(400, f"{name} must be true or false")


def import_csv(request: Request) -> Response:
    actor = authenticate(request)
    name = request.path_params["object"]
    record_api._object_fields(request, name)
    params = request.query_params
    unknown = sorted(set(params.keys()) - IMPORT_PARAMS)
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(unknown)}; use mapping, match, dry_run")
    dry_run = _flag(params.get("dry_run"), "dry_run")
    kind, _, options = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() not in CSV_TYPES:
        raise Problem(415, "send the file as text/csv (UTF-8)")
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in options.split(";")
                    if p.strip().lower().startswith("charset=")), "utf-8")
    if charset not in ("utf-8", "utf8"):
        raise Problem(415, "send the CSV as UTF-8 (charset=utf-8)")
    body = awaited(read_body, request, MAX_IMPORT)
    try:
        table = parse_csv(body)
        mapping = parse_mapping(params.get("mapping"))
        result = import_rows(record_api.service(request), name, table, actor,
                             mapping=mapping, match=params.get("match") or None, dry_run=dry_run)
    except ImportRefused as exc:
        raise Problem(400, str(exc)) from None
    return JSONResponse(result.as_dict(), status_code=207 if result.errors else 200)


def export_csv(request: Request) -> Response:
    actor = authenticate(request)
    name = request.path_params["object"]
    known = record_api.visible_fields(request, name, actor)
    service = record_api.service(request)
    runtime = request.app.state.runtime
    obj = runtime.model.object(name)
    with runtime.db.read() as conn:
        access = service.access(obj, actor, conn)
        if not access.rights.export:
            raise service.forbidden(obj, actor, "export")
        hidden = access.hidden
    query = record_api._query(request, known, actor)
    columns = export_columns(obj, hidden, query.fields)
    query = replace(query, limit=PAGE, fields=tuple(columns[1:]) if query.fields else None)
    first = service.list(name, query, actor=actor)  # a bad filter or sort fails here, as a problem document
    detail = {"filter": query.filter, "search": query.search, "sort": list(query.sort), "columns": columns}

    def stream() -> Iterator[bytes]:
        rows, complete = 0, False
        try:
            for chunk, count in export_rows(service, name, query, actor, columns, first):
                rows += count
                yield chunk.encode("utf-8")
            complete = True
        finally:
            with runtime.db.begin() as conn:
                audit.record(conn, "export", actor.clock.now(), user_id=actor.user_id, object_name=name,
                             detail={**detail, "rows": rows, "complete": complete},
                             address=request.client.host if request.client else None)

    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})

