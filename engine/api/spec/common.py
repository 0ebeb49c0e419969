"""Pieces every part of the document shares: translatable summaries, the problem document,
response headers, the error responses of each kind of operation and small schema helpers."""

from __future__ import annotations

from typing import Any

from metacrm.engine import i18n
from metacrm.engine.api.problems import TITLES

#: The languages metadata labels are given in; enum labels are described in each.
LANGUAGES = ("en", "zh-CN", "zh-TW")


def summary(text: str, language: str, **values: Any) -> str:
    """An operation's summary or description in the caller's language. Every human sentence of
    the document passes through here as a plain English template, a message id of the catalogue
    (engine/i18n/messages); `values` fill its {names} (an object's label already in `language`)."""
    return i18n.translate(text, language, **values)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def json_response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def obj(properties: dict[str, Any], required: tuple[str, ...] | list[str] = (), *, closed: bool = False,
        **extra: Any) -> dict[str, Any]:
    """A JSON object schema; `closed` when the server refuses other keys."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = schema.get("type")
    if kinds is None:
        return schema
    kinds = kinds if isinstance(kinds, list) else [kinds]
    made = dict(schema, type=kinds + ["null"] if "null" not in kinds else kinds)
    if "enum" in made and None not in made["enum"]:
        made["enum"] = list(made["enum"]) + [None]
    return made


UUID = {"type": "string", "format": "uuid"}
DATE_TIME = {"type": "string", "format": "date-time"}
PAGE_NEXT = {"type": ["string", "null"], "description": "the URL of the next page, null on the last"}

FIELD_ERROR = obj({
    "field": {"type": ["string", "null"], "description": "the field (or metadata path) at fault, if one"},
    "code": {"type": "string", "description": "a stable, machine-readable code"},
    "message": {"type": "string", "description": "the problem, in the caller's language"},
    "index": {"type": "integer", "minimum": 0, "description": "bulk: the 0-based position of the record in the request"},
    "id": {"type": "string", "description": "bulk: the id of the record, when it had one"},
    "file": {"type": ["string", "null"], "description": "metadata: the document's file"},
    "line": {"type": ["integer", "null"], "description": "metadata: the line in that file"},
    "count": {"type": "integer", "description": "metadata: how many existing rows the change would break"},
}, ["code", "message"])

PROBLEM = obj({
    "type": {"type": "string", "format": "uri"},
    "title": {"type": "string"},
    "status": {"type": "integer", "minimum": 400, "maximum": 599},
    "detail": {"type": "string"},
    "errors": {"type": "array", "items": ref("FieldError")},
    "current_version": {"type": ["integer", "null"], "description": "412: the record's version now"},
    "current_revision": {"type": "integer", "description": "409 on apply: the metadata revision now"},
    "retry_after": {"type": "integer", "description": "429: seconds to wait"},
    "code": {"type": "string", "description": "503: why the database could not answer (busy, timeout, unavailable)"},
}, ["type", "title", "status", "detail"])

HEADERS = {
    "ETag": {"description": "the record's version tag; send it back in If-Match to update or delete what you read",
             "schema": {"type": "string"}},
    "Location": {"description": "the URL of the new record", "schema": {"type": "string", "format": "uri-reference"}},
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 0}},
    "Content-Disposition": {"description": "the suggested file name", "schema": {"type": "string"}},
    "Set-Cookie": {"description": "the session cookie (metacrm_session, HttpOnly)", "schema": {"type": "string"}},
    "Allow": {"description": "the methods this path serves", "schema": {"type": "string"}},
}


def header(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


def problem(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/Problem{status}"}


def problem_responses(language: str) -> dict[str, Any]:
    """One reusable response per status; 429 and 503 carry Retry-After."""
    made = {}
    for status, title in TITLES.items():
        if status == 500:
            continue
        response: dict[str, Any] = {"description": summary(title, language), "content": {
            "application/problem+json": {"schema": ref("Problem")}}}
        if status in (429, 503):
            response["headers"] = {"Retry-After": header("Retry-After")}
        if status == 405:
            response["headers"] = {"Allow": header("Allow")}
        made[f"Problem{status}"] = response
    return made


def errors(*statuses: int, body: bool = False, signed_in: bool = True) -> dict[str, Any]:
    """The problem responses of an operation: those it names, plus 400/413/415 for one with a
    body, 401/403 for one that needs a caller (403: a session without its CSRF token, or no
    right), and 503 (the database is busy or unreachable) for all."""
    codes = set(statuses) | {503}
    if body:
        codes |= {400, 413, 415}
    if signed_in:
        codes |= {401, 403}
    return {str(code): problem(code) for code in sorted(codes)}


def query_param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}
