"""The OpenAPI 3.1 document, generated from the live metadata for the caller, and a docs page.

Each object gets a schema with its real fields, JSON types, formats, enums, required
flags and read-only markers; fields hidden from the caller are not described at all.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from metacrm.engine.api.context import request_unit
from metacrm.engine.security.access import Access
from metacrm.metamodel.model import FieldDef, ObjectDef

PROBLEM = {"$ref": "#/components/responses/Problem"}
SYSTEM_PROPERTIES = {
    "id": {"type": "string", "format": "uuid", "readOnly": True},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "created_by": {"type": ["string", "null"], "format": "uuid", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_by": {"type": ["string", "null"], "format": "uuid", "readOnly": True},
    "owner": {"type": ["string", "null"], "format": "uuid"},
    "version": {"type": "integer", "readOnly": True},
}


def field_schema(field: FieldDef) -> dict[str, Any]:
    storage = field.storage_type
    if storage in ("integer",):
        schema: dict[str, Any] = {"type": "integer"}
    elif storage in ("decimal", "currency", "percent"):
        schema = {"type": ["number", "string"], "description": f"decimal({field.precision},{field.scale})"}
    elif storage == "boolean":
        schema = {"type": "boolean"}
    elif storage == "date":
        schema = {"type": "string", "format": "date"}
    elif storage == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif storage == "multi_picklist":
        schema = {"type": "array", "items": {"type": "string", "enum": list(field.option_values)}}
    elif storage == "json":
        schema = {}
    elif storage in ("lookup", "master_detail", "user"):
        schema = {"type": "string", "format": "uuid"}
    else:
        schema = {"type": "string"}
        if storage == "picklist":
            schema["enum"] = list(field.option_values)
        if storage == "email":
            schema["format"] = "email"
        if storage == "url":
            schema["format"] = "uri"
        if field.max_length:
            schema["maxLength"] = field.max_length
        if field.required or field.min_length:
            schema["minLength"] = max(1 if field.required else 0, field.min_length or 0)
    if field.min is not None and storage in ("integer", "decimal", "currency", "percent"):
        schema["minimum"] = int(field.min) if storage == "integer" else float(field.min)
    if field.max is not None and storage in ("integer", "decimal", "currency", "percent"):
        schema["maximum"] = int(field.max) if storage == "integer" else float(field.max)
    if "type" in schema and not field.required:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = types + ["null"]
        if "enum" in schema:
            schema["enum"] = schema["enum"] + [None]
    schema["title"] = field.label()
    return schema


def object_schemas(obj: ObjectDef, access: Access) -> dict[str, Any]:
    visible = [f for f in obj.fields if f.name not in access.hidden]
    record = {"type": "object", "properties": dict(SYSTEM_PROPERTIES), "required": ["id", "version"]}
    writable = {"type": "object", "additionalProperties": False, "properties": {"owner": SYSTEM_PROPERTIES["owner"]}}
    for f in visible:
        schema = field_schema(f)
        locked = f.is_computed or f.read_only or f.name in access.read_only
        record["properties"][f.name] = dict(schema, readOnly=True) if locked else schema
        if f.storage_type in ("decimal", "currency", "percent") and not locked:
            pass
        if not locked:
            writable["properties"][f.name] = schema
    create = dict(writable, required=[f.name for f in visible if f.required and not f.is_computed
                                      and f.default is None and f.default_expression is None])
    return {f"{obj.name}": record, f"{obj.name}_create": create, f"{obj.name}_update": writable}


SHARE = {"type": "object", "required": ["id", "access", "granted_at"], "properties": {
    "id": {"type": "integer"}, "record_id": {"type": "string", "format": "uuid"},
    "user_id": {"type": ["string", "null"], "format": "uuid"}, "group": {"type": ["string", "null"]},
    "access": {"enum": ["read", "edit"]}, "granted_by": {"type": ["string", "null"], "format": "uuid"},
    "granted_at": {"type": "string", "format": "date-time"}}}


def share_operations(obj: ObjectDef, id_param: list[dict[str, Any]]) -> dict[str, Any]:
    """GET/POST/DELETE /api/v1/records/{object}/{id}/shares (engine.api.sharing)."""
    label = obj.label()
    errors = {str(code): PROBLEM for code in (400, 401, 403, 404, 413, 415, 422)}
    share = {"$ref": "#/components/schemas/Share"}
    who = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
           for name in ("user_id", "group")]
    body = {"type": "object", "additionalProperties": False, "properties": {
        "user_id": {"type": "string", "format": "uuid"}, "group": {"type": "string"},
        "access": {"enum": ["read", "edit"]}}}
    return {
        "get": {"summary": f"Shares of a {label}", "operationId": f"list_{obj.name}_shares", "parameters": id_param,
                "responses": {"200": {"description": "the shares", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["shares"],
                    "properties": {"shares": {"type": "array", "items": share}}}}}}, **errors}},
        "post": {"summary": f"Share a {label} with a user or a group", "operationId": f"share_{obj.name}",
                 "parameters": id_param,
                 "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                 "responses": {"201": {"description": "shared", "content": {"application/json": {"schema": {
                     "type": "object", "required": ["share"], "properties": {"share": share}}}}}, **errors}},
        "delete": {"summary": f"Stop sharing a {label} with a user or a group", "operationId": f"unshare_{obj.name}",
                   "parameters": id_param + who,
                   "responses": {"200": {"description": "removed", "content": {"application/json": {"schema": {
                       "type": "object", "required": ["removed"], "properties": {"removed": {"type": "integer"}}}}}},
                       **errors}},
    }


def build(runtime, actor, conn) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Problem": {
        "type": "object", "required": ["status", "title"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                       "detail": {"type": "string"}, "errors": {"type": "array", "items": {
                           "type": "object", "properties": {"field": {"type": ["string", "null"]},
                                                            "code": {"type": "string"},
                                                            "message": {"type": "string"}}}}}}}
    schemas["Share"] = SHARE
    for obj in runtime.model.objects.values():
        access = Access(obj, actor, conn)
        if access.rights.read == "none" and not access.rights.create:
            continue
        schemas.update(object_schemas(obj, access))
        ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
        one = {"content": {"application/json": {"schema": ref(obj.name)}}}
        page = {"type": "object", "required": ["records"], "properties": {
            "records": {"type": "array", "items": ref(obj.name)}, "next_cursor": {"type": ["string", "null"]},
            "next": {"type": "string"}}}
        errors = {str(code): PROBLEM for code in (400, 401, 403, 404, 413, 415, 422)}
        id_param = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
        list_params = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                       for name in ("filter", "sort", "search", "fields", "cursor")]
        list_params.append({"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}})
        label = obj.label()
        paths[f"/api/v1/records/{obj.name}"] = {
            "get": {"summary": f"List {label}", "operationId": f"list_{obj.name}", "parameters": list_params,
                    "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": page}}},
                                  **errors}},
            "post": {"summary": f"Create {label}", "operationId": f"create_{obj.name}",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": ref(f"{obj.name}_create")}}},
                     "responses": {"201": dict(one, description="created"), **errors}},
        }
        paths[f"/api/v1/records/{obj.name}/{{id}}"] = {
            "get": {"summary": f"Get {label}", "operationId": f"get_{obj.name}", "parameters": id_param,
                    "responses": {"200": dict(one, description="the record"), "304": {"description": "unchanged"},
                                  **errors}},
            "patch": {"summary": f"Update {label}", "operationId": f"update_{obj.name}", "parameters": id_param,
                      "requestBody": {"required": True,
                                      "content": {"application/json": {"schema": ref(f"{obj.name}_update")}}},
                      "responses": {"200": dict(one, description="updated"), "412": PROBLEM, **errors}},
            "delete": {"summary": f"Delete {label}", "operationId": f"delete_{obj.name}", "parameters": id_param,
                       "responses": {"204": {"description": "deleted"}, "412": PROBLEM, **errors}},
        }
        paths[f"/api/v1/records/{obj.name}/{{id}}/shares"] = share_operations(obj, id_param)
    return {
        "openapi": "3.1.0",
        "info": {"title": "metacrm API", "version": f"revision {runtime.model.revision}"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {"Problem": {"description": "an error (RFC 9457)", "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "metacrm_session"}},
        },
        "security": [{"token": []}, {"session": []}],
    }


def document(request: Request) -> JSONResponse:
    with request_unit(request) as unit:
        return JSONResponse(build(request.app.state.runtime, unit.actor, unit.conn))


DOCS = """<!doctype html><html><head><meta charset="utf-8"><title>metacrm API</title>
<style>body{font:14px system-ui;margin:2em;max-width:60em}code{background:#f4f4f4;padding:0 .3em}
h2{margin-top:2em}li{margin:.2em 0}</style></head><body><h1>metacrm API</h1>
<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI 3.1, as you may see it).</p>
<div id="paths">Loading…</div>
<script>
fetch('/api/v1/openapi.json',{credentials:'same-origin'}).then(r=>r.json()).then(doc=>{
  const el=document.getElementById('paths'); el.textContent='';
  for (const [path, ops] of Object.entries(doc.paths||{})) {
    const h=document.createElement('h2'); h.textContent=path; el.appendChild(h);
    const ul=document.createElement('ul');
    for (const [method, op] of Object.entries(ops)) {
      const li=document.createElement('li'); li.textContent=method.toUpperCase()+' — '+op.summary; ul.appendChild(li);
    }
    el.appendChild(ul);
  }
});
</script></body></html>"""


def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS)
